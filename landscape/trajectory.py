"""Trajectory directions (``--trajectory``): the PCA plane of a training run's snapshots around the final model,
and the grid that covers the projected path.

Snapshots are a run folder's checkpoint files, ordered by the number in their names: ``landscape.train``'s
``epoch_NNN.pt``, or any naming that carries a step or epoch (``step100.pt``, ``ckpt-2000.pth``,
``model_e7.safetensors``); from Python also a list of ``nn.Module`` snapshots in order (or a dict ``{step:
module}``).
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

import torch.nn as nn

from landscape.checkpoints import load_checkpoint
from landscape.directions import pca_directions
from landscape.errors import LandscapeError

CHECKPOINT_EXTS = (".pt", ".pth", ".ckpt", ".t7", ".bin", ".safetensors")


def list_run_snapshots(run_dir: str, exclude: str | None = None) -> list[tuple[int, str]]:
    """``(step, path)`` of a run folder's snapshots in step order: ``epoch_NNN.pt`` when there are any (what
    ``landscape.train`` writes), else every checkpoint file whose name carries a number (its last one is the
    step), all of one naming pattern. ``exclude``: the final model's file, never a snapshot of itself.

    Raises:
        LandscapeError: no numbered checkpoint files, two namings (e.g. ``step*.pt`` and ``epoch*.pt``), or two
            files with the same step.
    """
    files = [p for p in sorted(glob.glob(os.path.join(glob.escape(run_dir), "*")))
             if p.lower().endswith(CHECKPOINT_EXTS) and os.path.isfile(p)
             and (exclude is None or os.path.abspath(p) != os.path.abspath(exclude))]
    ours = [(int(m.group(1)), p) for p in files if (m := re.fullmatch(r"epoch_(\d+)\.pt", os.path.basename(p)))]
    if ours:
        return sorted(ours)
    numbered: dict[str, list[tuple[int, str]]] = {}
    for p in files:
        name = os.path.basename(p)
        found = re.findall(r"\d+", name)
        if found:
            numbered.setdefault(re.sub(r"\d+", "N", name), []).append((int(found[-1]), p))
    if not numbered:
        raise LandscapeError(f"--trajectory {run_dir!r} holds no checkpoint files with a step or epoch in their "
                             f"names (e.g. epoch_001.pt, step100.pt); found {len(files)} checkpoint file(s)")
    if len(numbered) > 1:
        raise LandscapeError(f"--trajectory {run_dir!r} mixes snapshot namings ({', '.join(sorted(numbered))}); "
                             "pass a folder holding one run's snapshots")
    snaps = sorted(next(iter(numbered.values())))
    steps = [s for s, _ in snaps]
    dup = sorted({s for s in steps if steps.count(s) > 1})
    if dup:
        raise LandscapeError(f"--trajectory {run_dir!r}: several snapshots have step {dup[0]}; their order is "
                             "ambiguous")
    return snaps


def trajectory_directions(final: nn.Module | str, snapshots: Any, arch: str | None = None,
                          ignore: str = "biasbn", trust: bool = False, model: str | None = None,
                          final_step: Any = None) -> dict:
    """PCA directions of a training run's snapshots around the final model (see :func:`pca_directions`).

    As the reference implementation, the final model is a row of the PCA matrix (and the path's last point)
    even when it is not one of the snapshots.

    Args:
        final: the final model, or its checkpoint file.
        snapshots: a run folder (:func:`list_run_snapshots`), a list of ``nn.Module`` snapshots in order, or a
            dict ``{step: nn.Module}``.
        arch, trust, model: how checkpoint files are loaded (:func:`landscape.checkpoints.load_checkpoint`).
        final_step: the final model's step (default: a checkpoint's recorded ``epoch``, else one after the last).

    Returns:
        ``{"x", "y", "explained_variance_ratio", "path", "epochs"}``.
    """
    if isinstance(final, nn.Module):
        net, name = final, None
    else:
        net, info = load_checkpoint(final, arch=arch, trust=trust, model=model)
        name = info["arch"]
        if final_step is None and isinstance(info.get("epoch"), (int, float)):
            final_step = int(info["epoch"])
    models, steps = _snapshots(snapshots, None if isinstance(final, nn.Module) else final, name, trust, model)
    x, y, ratio, path = pca_directions(net, models, ignore)
    if len(path) > len(models):  # the final model, added as the last row
        steps.append(int(final_step) if final_step is not None else (steps[-1] + 1 if steps else 0))
    return {"x": x, "y": y, "explained_variance_ratio": ratio, "path": path, "epochs": steps}


def _snapshots(snapshots: Any, final_path: str | None, arch: str | None, trust: bool, model: str | None
               ) -> tuple[list[nn.Module], list[int]]:
    if isinstance(snapshots, (str, os.PathLike)):
        run_dir = os.fspath(snapshots)
        if not os.path.isdir(run_dir):
            raise LandscapeError(f"--trajectory {run_dir!r} is not a folder; pass a run folder of snapshots (e.g. "
                                 "landscape.train's epoch_NNN.pt files)")
        snaps = list_run_snapshots(run_dir, exclude=final_path)
        return ([load_checkpoint(p, arch=None if model else arch, trust=trust, model=model)[0] for _, p in snaps],
                [s for s, _ in snaps])
    if isinstance(snapshots, dict):
        items = sorted(snapshots.items())
    elif isinstance(snapshots, (list, tuple)):
        items = list(enumerate(snapshots))
    else:
        raise LandscapeError(f"trajectory must be a run folder, a list of nn.Module snapshots or a dict {{step: "
                             f"module}}; got {type(snapshots).__name__}")
    bad = [type(m).__name__ for _, m in items if not isinstance(m, nn.Module)]
    if bad:
        raise LandscapeError(f"trajectory snapshots from Python must be nn.Module objects; got a {bad[0]}")
    return [m for _, m in items], [int(s) for s, _ in items]


def covering_grid(values: list[float], default: str) -> str:
    """A grid spec covering ``values`` (and 0, the final model) with a 15 % margin; NUM from ``default``."""
    lo, hi = min(min(values), 0.0), max(max(values), 0.0)
    pad = 0.15 * (hi - lo) or 1.0
    return f"{lo - pad:.6g}:{hi + pad:.6g}:{default.split(':')[2]}"
