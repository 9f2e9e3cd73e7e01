"""Text from a file (an architecture, a data set, a label) as figures and pages show it: one line, at most
:data:`~landscape.surface.validate.SHOWN` characters, and escaped for where it goes, so a file's text is shown
literally and never read as markup (matplotlib's ``$...$`` math, Plotly's ``<b>`` tags).
"""

from __future__ import annotations

import html
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


__all__ = ["mpl", "web", "shown"]
