"""Landscapes through training: a small surface around the current weights every N steps or epochs, into one file.

Usable from any training loop::

    rec = landscape.Recorder(model, data=(x, y), path="runs/r20/landscape.h5")   # 11 x 11, 512 samples
    for epoch in range(epochs):
        ...train...
        rec.record(epoch)                      # one frame; prints its cost

and from PyTorch Lightning and the HuggingFace ``Trainer`` (:mod:`landscape.callbacks`). Each frame is the surface
``L(θ_t + α δ + β η)`` around the weights ``θ_t`` of that moment, along directions drawn and filter-normalized
**once**, at the first frame, and stored in the file, so every frame is along the same δ, η and frames compare.
The evaluation runs on a copy of the model (or, for a large one, moves it in place and puts it back bitwise) and
draws no random number from torch: training with and without recording gives the same weights (tested).

The cost is kept small by default: a subset of the data (``samples=512``), an 11 × 11 grid; ``tolerance`` adds
adaptive sampling. ``python -m landscape.render --animate FILE`` draws the frames as a GIF with one colour scale and
an interactive page with a slider.

The file (HDF5): ``xcoordinates`` (and ``ycoordinates`` in 2D), ``steps`` (F,), ``{split}_loss`` and
``{split}_acc`` (F, ny, nx) or (F, nx), growing by one frame at a time (values written before the frame's entry in
``steps``, so a crash never leaves a step without its values), ``xdirection``/``ydirection``, attrs (``format``:
``landscape-movie``, the settings, ``unit``: what a step counts). A resumed training run continues the file; a step
already recorded is skipped.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn as nn

from landscape.errors import LandscapeError
from landscape.paths import atomic_path
from landscape.surface import parse_grid, read_direction, write_direction
from landscape.surface.h5io import FileLock, attr_value, open_h5
from landscape.surface.movie import FORMAT, read_movie


class Recorder:
    """Records a surface around a training model's current weights, frame by frame (see the module docstring).

    Args:
        model: the model being trained (never modified; evaluated on a copy).
        data: anything :func:`landscape.compute` takes (tensors, a Dataset, a DataLoader, a spec string); read
            once, its first ``samples`` kept.
        path: the file.
        x, y: the grid (``y=None``: a 1D curve along x).
        samples: samples per frame (``None``: all).
        loss, objective: as for :func:`landscape.compute`.
        seed, norm, ignore: the directions (drawn at the first frame).
        tolerance, rtol: adaptive sampling per point.
        bn: BatchNorm statistics at each point: ``eval`` (the model's running statistics, as
            :func:`landscape.compute`) or ``recompute`` (re-estimated on the frame's samples at every point). Early in
            training the running statistics lag the weights, and an ``eval`` frame shows mostly that lag.
        unit: what a step counts (``epoch`` or ``step``), for the figures.
        device: where frames are evaluated (default: the model's device).
        verbose: print each frame's cost.
    """

    def __init__(self, model: nn.Module, data: Any, path: str = "plots/landscape_movie.h5", x: str = "-1:1:11",
                 y: str | None = "-1:1:11", samples: int | None = 512, loss: Any = None, objective: Any = None,
                 seed: int = 123, norm: str = "filter", ignore: str = "biasbn", tolerance: float | None = None,
                 rtol: float | None = None, bn: str = "eval", unit: str = "epoch", device: str | None = None,
                 verbose: bool = True):
        from landscape.datasource import resolve_data
        from landscape.settings import BN_MODES, check_seed

        check_seed(seed, "seed")
        if bn not in BN_MODES:
            raise LandscapeError(f"bn={bn!r} is not one of {', '.join(BN_MODES)}; pass bn='eval' (the running "
                                 "statistics) or bn='recompute' (re-estimated at every point)")
        self.model, self.path, self.unit, self.verbose = model, path, unit, verbose
        self.xc, self.yc = parse_grid(x, "x"), (parse_grid(y, "y") if y else None)
        dev = torch.device(device) if device else next((p.device for p in model.parameters()), torch.device("cpu"))
        self.data = resolve_data(data, samples=samples, device=dev)
        self.options = dict(loss=loss, objective=objective, tolerance=tolerance, rtol=rtol, bn_mode=bn)
        self.settings = {"x": x, "y": y, "samples": len(self.data), "seed": seed, "norm": norm, "ignore": ignore,
                         "loss": _name(loss), "objective": _name(objective), "tolerance": tolerance, "rtol": rtol,
                         "bn": bn, "unit": unit, "dataset": self.data.name,
                         "arch": str(getattr(model, "arch", type(model).__name__))}
        self.seed, self.norm, self.ignore = seed, norm, ignore
        self._dirs = None
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        if os.path.exists(path):
            self._check()

    # -- the file ------------------------------------------------------------------------------------------------
    def _check(self) -> None:
        with open_h5(self.path, "r") as f:
            if attr_value(f.attrs.get("format", "")) != FORMAT:
                raise LandscapeError(f"{self.path!r} exists but is not a landscape movie; pass another path")
            saved = json.loads(attr_value(f.attrs["settings"]))
        if saved != json.loads(json.dumps(self.settings)):
            diff = [f"{k}: file has {saved.get(k)!r}, now {v!r}" for k, v in self.settings.items() if saved.get(k) != v]
            raise LandscapeError(f"cannot continue {self.path!r} with other settings ({'; '.join(diff)}); use the "
                                 "original ones or another path")

    def steps(self) -> list[int]:
        """The steps recorded so far."""
        if not os.path.exists(self.path):
            return []
        with open_h5(self.path, "r", probe=False) as f:
            return [int(v) for v in f["steps"][()]]

    def _directions(self):
        if self._dirs is not None:
            return self._dirs
        from landscape.directions import Directions, make_directions

        if os.path.exists(self.path):  # a resumed run: the file's, drawn at its first frame
            with open_h5(self.path, "r", probe=False) as f:
                x = read_direction(f, "xdirection")[0]
                y = read_direction(f, "ydirection")[0] if "ydirection" in f else None
            self._dirs = Directions.of(self.model, x, y)
        else:
            xd, yd = make_directions(self.model, self.yc is not None, self.seed, self.norm, self.ignore)
            self._dirs = Directions.of(self.model, xd, yd, "weights", "random")
        return self._dirs

    def _create(self, split: str, accuracy: bool) -> None:
        shape = (0,) + ((len(self.yc),) if self.yc is not None else ()) + (len(self.xc),)
        dirs = self._directions()
        with atomic_path(self.path) as tmp, h5py.File(tmp, "w") as f:
            f["xcoordinates"] = self.xc
            if self.yc is not None:
                f["ycoordinates"] = self.yc
            f.create_dataset("steps", shape=(0,), maxshape=(None,), dtype=np.int64)
            for key in [f"{split}_loss"] + ([f"{split}_acc"] if accuracy else []):
                f.create_dataset(key, shape=shape, maxshape=(None,) + shape[1:], dtype=np.float64,
                                 chunks=(1,) + shape[1:])
            x_np, y_np = dirs.arrays()
            write_direction(f, "xdirection", x_np, dirs.names)
            if y_np is not None:
                write_direction(f, "ydirection", y_np, dirs.names)
            f.attrs["format"] = FORMAT
            f.attrs["settings"] = json.dumps(self.settings, sort_keys=True)
            f.attrs["unit"] = self.unit
            f.attrs["split"] = split
            f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            f.attrs["torch_version"] = str(torch.__version__)  # a str subclass, which h5py does not take

    # -- a frame -------------------------------------------------------------------------------------------------
    def record(self, step: int) -> float | None:
        """Evaluate the surface around the model's weights now and append it as the frame of ``step``; returns
        the seconds it took (``None``: ``step`` was already recorded)."""
        from landscape.evaluate import PlaneEvaluator
        from landscape.surface import grid_coords

        step = int(step)
        if step in self.steps():
            return None
        t0 = time.perf_counter()
        dirs = self._directions()
        ev = PlaneEvaluator(self.model, self.data, dirs, **{k: v for k, v in self.options.items()
                                                             if v is not None}, sample_seed=self.seed)
        coords = grid_coords(self.xc, self.yc)
        losses, accs = ev.evaluate(coords)
        shape = ((len(self.yc),) if self.yc is not None else ()) + (len(self.xc),)
        split = "train"
        if not os.path.exists(self.path):
            self._create(split, accs is not None)
        with FileLock(self.path):
            with open_h5(self.path, "r+", probe=False) as f:
                n = len(f["steps"])
                for key, vals in ((f"{split}_loss", losses), (f"{split}_acc", accs)):
                    if vals is None or key not in f:
                        continue
                    f[key].resize(n + 1, axis=0)
                    f[key][n] = np.asarray(vals, dtype=np.float64).reshape(shape)
                f.flush()
                f["steps"].resize(n + 1, axis=0)  # the frame counts once its values are in
                f["steps"][n] = step
                f.flush()
        seconds = time.perf_counter() - t0
        if self.verbose:
            print(f"landscape frame at {self.unit} {step}: {len(coords)} points on {len(self.data):,} samples in "
                  f"{seconds:.1f} s ({os.path.basename(self.path)})", flush=True)
        return seconds


def _name(v: Any) -> Any:
    from landscape.settings import qualified_name

    return qualified_name(v) if callable(v) else v


__all__ = ["Recorder", "read_movie"]
