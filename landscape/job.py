"""The checkpoint-first entry point kept from before :func:`landscape.compute`, and trajectory directions.

``compute_landscape(ckpt, ...)`` keeps its old keywords and meaning (no ``y``: a 1D curve; no figures); new
code calls :func:`landscape.compute`, which takes any model, data and loss.
"""

from __future__ import annotations

import os
from typing import Any

from landscape.api import LandscapeResult, compute
from landscape.checkpoints import load_checkpoint
from landscape.directions import pca_directions
from landscape.errors import LandscapeError
from landscape.paths import list_snapshots

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


def trajectory_directions(ckpt: str, run_dir: str, arch: str | None = None, ignore: str = "biasbn",
                          trust: bool = False, model: str | None = None) -> dict:
    """PCA directions of a training run's snapshots around ``ckpt`` (see :func:`pca_directions`).

    As the reference implementation, the final model is a row of the PCA matrix (and the path's last point)
    even when it is not one of the ``epoch_*.pt`` snapshots.

    Returns:
        ``{"x", "y", "explained_variance_ratio", "path", "epochs"}``.
    """
    if not os.path.isdir(run_dir):
        raise LandscapeError(f"--trajectory {run_dir!r} is not a folder; pass a run folder of landscape.train "
                             "(with epoch_NNN.pt snapshots)")
    snaps = list_snapshots(run_dir)
    final, info = load_checkpoint(ckpt, arch=arch, trust=trust, model=model)
    models = [load_checkpoint(p, arch=None if model else info["arch"], trust=trust, model=model)[0]
              for _, p in snaps]
    x, y, ratio, path = pca_directions(final, models, ignore)
    epochs = [e for e, _ in snaps]
    if len(path) > len(snaps):  # the final model, added as the last row
        final_epoch = info.get("epoch")
        epochs.append(int(final_epoch) if isinstance(final_epoch, (int, float)) else (epochs[-1] + 1 if epochs else 0))
    return {"x": x, "y": y, "explained_variance_ratio": ratio, "path": path, "epochs": epochs}


def covering_grid(values: list[float], default: str) -> str:
    """A grid spec covering ``values`` (and 0, the final model) with a 15 % margin; NUM from ``default``."""
    lo, hi = min(min(values), 0.0), max(max(values), 0.0)
    pad = 0.15 * (hi - lo) or 1.0
    return f"{lo - pad:.6g}:{hi + pad:.6g}:{default.split(':')[2]}"
