"""The checkpoint-first entry point kept from before :func:`landscape.compute`.

``compute_landscape(ckpt, ...)`` keeps its old keywords and meaning (no ``y``: a 1D curve; no figures); new
code calls :func:`landscape.compute`, which takes any model, data and loss.
"""

from __future__ import annotations

from typing import Any

from landscape.api import LandscapeResult, compute
from landscape.trajectory import covering_grid, trajectory_directions  # their earlier home

__all__ = ["compute_landscape", "covering_grid", "trajectory_directions"]

_RENAMED = {"trust": "trust_checkpoint", "compile_model": "compile"}


def compute_landscape(ckpt: str, **options: Any) -> LandscapeResult:
    """Compute (or resume) the loss surface of a checkpoint and write ``<out>/<name>.h5`` (no figures).

    Keywords are :class:`landscape.settings.Config` fields (``trust`` and ``compile_model`` are still accepted
    for ``trust_checkpoint`` and ``compile``). As before, no ``y`` means a 1D curve along ``x`` (default
    ``-1:1:51``) unless ``trajectory`` is given.
    """
    opts = {_RENAMED.get(k, k): v for k, v in options.items()}
    if opts.get("y") is None and not opts.get("trajectory"):
        opts.setdefault("one_d", True)  # compute's 1D default grid is the old default x, -1:1:51
    opts.setdefault("render", False)
    return compute(ckpt, **opts)
