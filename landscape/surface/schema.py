"""The surface file's schema (DESIGN section 6): what it holds and how it is read.

Layout: ``xcoordinates`` (nx,), ``ycoordinates`` (ny,) (absent in 1D); ``{split}_loss``/``{split}_acc``
(ny, nx) float64, value at (x_j, y_i) in ``[i, j]``, NaN until computed (``{split}_acc`` absent for losses
without class labels); beside them each point's precision, ``{split}_loss_se``/``{split}_acc_se`` (standard
errors of the mean loss and of the accuracy, see :mod:`landscape.sampling`) and ``{split}_n`` (samples used),
float64, NaN until computed; ``{split}_done`` bool; ``xdirection``/``ydirection`` groups of datasets ``"0".."N-1"``;
settings in attributes, with the lists ``identity_attrs`` and ``shown_attrs`` saying which of them define the
values and which the page shows, and ``config`` the run's whole :class:`~landscape.settings.Config` as JSON.
This is the reference's layout for square grids, so its plotting scripts read our files.

Torch-free on purpose: rendering reads surface files through this module and must never import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import h5py
import numpy as np

from landscape.errors import LandscapeError
from landscape.settings import SHOWN_ATTRS, split_names
from landscape.surface.grid import grid_shape
from landscape.surface.h5io import open_h5
from landscape.surface.layout import (ATTRS, EVALUATED_KEYS, FORMAT_VERSION, STAT_KEYS, VALUE_KEYS, attr_names_of,
                                      attr_value, touch_everything)

__all__ = ["ATTRS", "FORMAT_VERSION", "STAT_KEYS", "VALUE_KEYS", "attr_names_of", "touch_everything", "stat_keys",
           "write_direction", "read_direction", "Surface", "listed_attrs", "read_surface", "summarize"]

def stat_keys(split: str, accuracy: bool = True) -> tuple[str, ...]:
    """The per-point precision datasets of ``split``: ``{split}_loss_se``, ``{split}_n`` (, ``{split}_acc_se``)."""
    return tuple(f"{split}_{k}" for k in STAT_KEYS if accuracy or k != "acc_se")


def write_direction(h5: h5py.File, group: str, direction: Sequence, names: Sequence[str] | None = None) -> None:
    """Store a direction as ``group/"0".."N-1"`` (the reference's layout), with attr ``names``."""
    if group in h5:
        del h5[group]
    g = h5.create_group(group)
    for i, d in enumerate(direction):
        g.create_dataset(str(i), data=np.asarray(d, dtype=np.float32))
    if names is not None:
        g.attrs["names"] = np.array([str(n) for n in names], dtype=h5py.string_dtype())


def read_direction(h5: h5py.File, group: str) -> tuple[list[np.ndarray], list[str] | None]:
    """Inverse of :func:`write_direction`; also reads the reference's direction files (no ``names``)."""
    g = h5[group]
    n = len(g.keys())
    missing = [str(i) for i in range(n) if str(i) not in g]
    if missing:
        raise LandscapeError(f"direction group {group!r} in {h5.filename!r} must hold datasets '0'..'{n - 1}'; "
                             f"missing {missing[:5]}")
    out = [np.asarray(g[str(i)][()], dtype=np.float32) for i in range(n)]
    names = g.attrs.get("names")
    return out, ([s.decode() if isinstance(s, bytes) else str(s) for s in names] if names is not None else None)


@dataclass
class Surface:
    """A surface file's contents, as numpy arrays (what rendering needs)."""

    path: str
    xcoordinates: np.ndarray
    ycoordinates: np.ndarray | None
    values: dict  # "train_loss" -> array, ... (NaN where not computed)
    attrs: dict
    done: dict = None  # "train" -> bool array, for our files (a diverged point is done with a NaN/inf loss)
    trajectory: dict = None  # {"x", "y", "epochs", "explained_variance_ratio"} when made with --trajectory
    evaluated: dict = None  # "train" -> bool array, for --refine files: evaluated (true) or predicted (false)

    @property
    def is_2d(self) -> bool:
        return self.ycoordinates is not None

    def names(self) -> list[str]:
        return sorted(self.values)

    @property
    def shown_attrs(self) -> list[str]:
        """The attributes the page's settings line shows, as the file lists them."""
        return listed_attrs(self.attrs, "shown_attrs", SHOWN_ATTRS)


def listed_attrs(attrs: dict, key: str, default: Sequence[str]) -> list[str]:
    """A surface's ``identity_attrs``/``shown_attrs`` list (files written before them: ``default``)."""
    v = attrs.get(key)
    if v is None or isinstance(v, str):
        return list(default)
    return [str(attr_value(n)) for n in np.atleast_1d(v)]


def read_surface(path: str, probe: bool = True) -> Surface:
    """Read any surface file: ours, or the reference's (where -1 marks points not yet computed).

    Args:
        probe: first read the file in a forked child (see :func:`probe_h5`); ``False`` only for a file this
            process has just written.

    Raises:
        LandscapeError: missing/corrupt file, or an HDF5 file that is not a loss surface.
    """
    f = open_h5(path, "r", probe)
    with f:
        try:
            if "xcoordinates" not in f:
                raise LandscapeError(f"{path!r} is an HDF5 file but not a loss surface (no 'xcoordinates')")
            x = np.asarray(f["xcoordinates"][()], dtype=np.float64).reshape(-1)
            if x.size == 0 or not np.all(np.isfinite(x)):
                raise ValueError("xcoordinates is empty or not finite")
            y = np.asarray(f["ycoordinates"][()], dtype=np.float64).reshape(-1) if "ycoordinates" in f else None
            # Look up known names one by one rather than iterating: a corrupted attribute or link table can make
            # HDF5's iteration run (practically) forever, while a lookup by name stays bounded.
            attrs = {}
            for k in attr_names_of(f):
                if k in f.attrs:
                    attrs[k] = attr_value(f.attrs[k])
            ours = "format_version" in attrs
            values, done = {}, {}
            # The done flags before any value: a writer stores values before their flags, so flags read first
            # never vouch for a value that was read before it was written (a file being written reads right).
            flags = {sp: np.asarray(f[f"{sp}_done"][()], dtype=bool)
                     for sp in dict.fromkeys(k.rsplit("_", 1)[0] for k in VALUE_KEYS) if ours and f"{sp}_done" in f}
            for key in VALUE_KEYS:
                if key not in f:
                    continue
                ds = f[key]
                if not isinstance(ds, h5py.Dataset):
                    continue
                arr = np.array(ds[()], dtype=np.float64)
                if not ours:
                    # The reference initialises with -1 and stores (nx, ny); its values are at [i, j] = (x_j, y_i)
                    # in flat order, which for square grids is also our (ny, nx) layout.
                    arr[arr == -1] = np.nan
                    if y is not None and arr.shape != (len(y), len(x)):
                        arr = arr.reshape(-1)[: len(x) * len(y)].reshape(len(y), len(x))
                else:
                    split_name = key.rsplit("_", 1)[0]
                    if f"{split_name}_done" in f:
                        done[split_name] = flags[split_name]
                        if done[split_name].shape != arr.shape:
                            raise ValueError(f"{split_name}_done has shape {done[split_name].shape}, "
                                             f"{key} {arr.shape}")
                        arr[~done[split_name]] = np.nan
                values[key] = arr
            evaluated = {key.rsplit("_", 1)[0]: np.asarray(f[key][()], dtype=bool) for key in EVALUATED_KEYS
                         if ours and key in f and isinstance(f[key], h5py.Dataset)}
            trajectory = None
            if "trajectory" in f and isinstance(f["trajectory"], h5py.Group):
                g = f["trajectory"]
                trajectory = {"x": np.asarray(g["x"][()], dtype=np.float64),
                              "y": np.asarray(g["y"][()], dtype=np.float64),
                              "epochs": np.asarray(g["epochs"][()]) if "epochs" in g else None,
                              "explained_variance_ratio": [float(v) for v in
                                                           g.attrs.get("explained_variance_ratio", [])]}
                if "label" in g.attrs:  # a curve drawn over the plane of its models (landscape.connect)
                    import json

                    trajectory.update(label=str(attr_value(g.attrs["label"])),
                                      t=np.asarray(g["t"][()], dtype=np.float64) if "t" in g else None,
                                      marks=json.loads(str(attr_value(g.attrs.get("marks", "{}")))))
        except LandscapeError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure inside a damaged file is the file's, not ours
            raise LandscapeError(f"{path!r}: damaged surface file ({type(e).__name__}: {str(e)[:160]}); delete it "
                                 "to start over")
    expected = grid_shape(x, y)
    for key, arr in values.items():
        if arr.shape != expected:
            raise LandscapeError(f"{path!r}: {key} has shape {arr.shape} but the grid is {expected}")
    if not values:
        raise LandscapeError(f"{path!r} holds coordinates but no *_loss/*_acc values yet")
    for sp, ev in evaluated.items():
        if ev.shape != expected:
            raise LandscapeError(f"{path!r}: {sp}_evaluated has shape {ev.shape} but the grid is {expected}")
    return Surface(path, x, y, values, attrs, done, trajectory, evaluated or None)


def summarize(surface: Surface, split: str | None = None) -> dict:
    """Centre value (alpha = beta = 0, or the nearest point), min/max loss and where they are."""
    split = split_names(split or str(surface.attrs.get("split", "train")))[0]
    loss = surface.values.get(f"{split}_loss")
    acc = surface.values.get(f"{split}_acc")
    if loss is None:
        raise LandscapeError(f"{surface.path!r} has no {split}_loss")
    jx = int(np.argmin(np.abs(surface.xcoordinates)))
    centre_idx = (jx,) if surface.ycoordinates is None else (int(np.argmin(np.abs(surface.ycoordinates))), jx)
    finite = np.isfinite(loss)
    out = {"centre": (float(surface.xcoordinates[jx]),
                      0.0 if surface.ycoordinates is None else float(surface.ycoordinates[centre_idx[0]])),
           "centre_loss": float(loss[centre_idx]), "centre_acc": float(acc[centre_idx]) if acc is not None else None,
           "total": int(loss.size)}
    done = (surface.done or {}).get(split)
    if done is None:
        done = ~np.isnan(loss)
    out["done"] = int(done.sum())
    out["diverged"] = int(np.sum(done & ~finite))
    if finite.any():
        out["min_loss"], out["max_loss"] = float(np.min(loss[finite])), float(np.max(loss[finite]))
    # The precision of the least precise point (files from before the errors were stored have none).
    for what in ("loss", "acc"):
        se = surface.values.get(f"{split}_{what}_se")
        if se is not None and np.isfinite(se).any():
            out[f"max_{what}_se"] = float(np.nanmax(np.where(np.isfinite(se), se, np.nan)))
    evaluated = (surface.evaluated or {}).get(split)
    if evaluated is not None:  # --refine: how many points were evaluated (the rest predicted)
        out["evaluated"] = int((evaluated & done).sum())
    n = surface.values.get(f"{split}_n")
    if n is not None and np.isfinite(n).any():
        used = n[np.isfinite(n)]
        full = int(surface.attrs.get("n_samples") or np.max(used))  # what evaluating all the data would take
        out["samples_used"], out["samples_full"] = int(used.sum()), int(used.size) * full
    return out
