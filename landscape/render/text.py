"""Text from a file (an architecture, a data set, a label) as figures and pages show it: one line, at most
:data:`~landscape.surface.validate.SHOWN` characters, and escaped for where it goes, so a file's text is shown
literally and never read as markup (matplotlib's ``$...$`` math, Plotly's ``<b>`` tags).
"""

from __future__ import annotations

import html
import os
from typing import Any

from landscape.surface.validate import SHOWN, shown


def mpl(value: Any, limit: int = SHOWN) -> str:
    """For a matplotlib title, label, legend entry or annotation: ``$`` escaped (``a$\\frac{$b`` is drawn as
    written, not parsed as math text, which fails on it)."""
    return shown(value, limit).replace("$", r"\$")


def web(value: Any, limit: int = SHOWN) -> str:
    """For Plotly text (titles, annotations, trace names, hover text) and HTML: ``&``, ``<``, ``>`` as entities,
    and ``%{`` broken (in a hover template it would be a placeholder)."""
    return html.escape(shown(value, limit), quote=False).replace("%{", "%\u200b{")


def run_name(path: Any, ext: bool = True) -> str:
    """A checkpoint as runs name their models: its folder and file (``r20_s1/final.pt``; ``ext=False``:
    ``r20_s1/final``), as the file records it (the plane's ``directions`` attribute names targets alike)."""
    p = os.path.normpath(str(path))
    name = "/".join(x for x in (os.path.basename(os.path.dirname(p)), os.path.basename(p)) if x)
    return name if ext else os.path.splitext(name)[0]


__all__ = ["mpl", "web", "shown", "run_name"]
