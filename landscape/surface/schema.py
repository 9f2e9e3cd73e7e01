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

import json
from dataclasses import dataclass
from typing import Sequence

import h5py
import numpy as np

from landscape.errors import LandscapeError
from landscape.settings import SHOWN_ATTRS, split_names
from landscape.surface.grid import grid_shape
from landscape.surface.layout import (ATTRS, EVALUATED_KEYS, FORMAT_VERSION, STAT_KEYS, VALUE_KEYS, attr_names_of,
                                      attr_value, touch_everything)
from landscape.surface.validate import (HINT, MAX_MARKS, dataset, mem_available, probed, read_attrs, read_axis,
                                        read_points, shown, stride_for)

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
    from landscape.surface.validate import check_tensor_groups

    # sizes and names checked before anything is read: a foreign file cannot make this allocate what it declares
    check_tensor_groups(h5, [group], h5.filename, "pass a direction file written by landscape or the reference "
                        "implementation")
    g = h5[group]
    n = len(g.keys())
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
    stride: int = 1  # read at every stride-th point of each axis (a grid larger than the reader's max_points)
    grid: tuple = None  # the file's grid shape, (ny, nx) or (nx,) (larger than the arrays when stride > 1)

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


def read_surface(path: str, probe: bool = True, max_points: int | None = None) -> Surface:
    """Read any surface file: ours, or the reference's (where -1 marks points not yet computed).

    Every attribute and declared size is checked before anything big is read (:mod:`landscape.surface.validate`):
    a file from elsewhere is read right or refused in one line.

    Args:
        probe: first read the file in a forked child (see :func:`probe_h5`); ``False`` only for a file this
            process has just written.
        max_points: read at most this many grid points: a larger grid is read at every k-th point of each axis
            (``Surface.stride`` = k, ``Surface.grid`` the file's shape). ``None``: every point, refused when its
            arrays would not fit in the available memory.

    Raises:
        LandscapeError: missing/corrupt file, an HDF5 file that is not a loss surface, or one whose attributes,
            coordinates or sizes are not what landscape writes.
    """
    return probed(path, lambda f: _load(f, path, max_points), probe)


def _load(f: h5py.File, path: str, max_points: int | None) -> Surface:
    try:
        return _read(f, path, max_points)
    except LandscapeError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure inside a damaged file is the file's, not ours
        raise LandscapeError(f"{path!r}: damaged surface file ({type(e).__name__}: {shown(e, 160)}); delete it "
                             "to start over")


def _read(f: h5py.File, path: str, max_points: int | None) -> Surface:
    if "xcoordinates" not in f:
        raise LandscapeError(f"{path!r} is an HDF5 file but not a loss surface (no 'xcoordinates')")
    x = read_axis(f, "xcoordinates", path)
    y = read_axis(f, "ycoordinates", path, required=False)
    # Look up known names one by one rather than iterating: a corrupted attribute or link table can make HDF5's
    # iteration run (practically) forever, while a lookup by name stays bounded.
    attrs = read_attrs(path, f.attrs, ATTRS)
    listed = [str(attr_value(n)) for key in ("identity_attrs", "shown_attrs") if key in attrs
              for n in np.atleast_1d(attrs[key])]
    attrs.update(read_attrs(path, f.attrs, [n for n in dict.fromkeys(listed) if n not in attrs]))
    ours = "format_version" in attrs
    shape = grid_shape(x, y)
    n = int(np.prod(shape))
    # Every declared size before any value is read: a small file can declare a huge array (unwritten chunks).
    arrays = {key: ds for key in VALUE_KEYS if (ds := dataset(f, key, path, required=False)) is not None}
    flags = {sp: ds for sp in ("train", "test")
             if ours and (ds := dataset(f, f"{sp}_done", path, required=False)) is not None}
    evaluated = {key.rsplit("_", 1)[0]: ds for key in EVALUATED_KEYS
                 if ours and (ds := dataset(f, key, path, required=False)) is not None}
    for key, ds in [*arrays.items(), *((f"{sp}_done", d) for sp, d in flags.items()),
                    *((f"{sp}_evaluated", d) for sp, d in evaluated.items())]:
        # the reference stores (nx, ny) in flat order: same values, any shape of the same size
        if ds.shape != shape and (ours or ds.size != n):
            raise LandscapeError(f"{path!r}: {key} has shape {ds.shape} but the grid (xcoordinates, ycoordinates) "
                                 f"is {shape}; {HINT}")
    if not arrays:
        raise LandscapeError(f"{path!r} holds coordinates but no *_loss/*_acc values yet")
    k = 1
    if max_points is not None and n > max_points:
        k = stride_for(shape, max_points)
        if any(ds.shape != shape for ds in arrays.values()):
            raise LandscapeError(f"{path!r}: a {_grid(shape)} grid in the reference's transposed layout is more than "
                                 f"{max_points:,} points and cannot be read in part; raise LANDSCAPE_MAX_POINTS to "
                                 f"{n:,} to read every point")
    elif max_points is None:
        need, avail = n * 8 * (len(arrays) + len(flags) + 2), mem_available()
        if avail is not None and need > avail:
            raise LandscapeError(f"{path!r}: reading every point of its {_grid(shape)} grid needs {need / 1e9:.1f} "
                                 f"GB, {avail / 1e9:.1f} GB is available; read every k-th point "
                                 "(read_surface(path, max_points=N)) or use a larger machine")
    sel = (slice(None, None, k),) * len(shape)
    x, y = x[::k], (y[::k] if y is not None else None)
    drawn = grid_shape(x, y)

    def read(ds: h5py.Dataset, dtype) -> np.ndarray:
        arr = np.array(ds[sel] if k > 1 else ds[()], dtype=dtype)
        return arr.reshape(drawn) if arr.shape != drawn else arr

    # The done flags before any value: a writer stores values before their flags, so flags read first never
    # vouch for a value that was read before it was written (a file being written reads right).
    done = {sp: read(ds, bool) for sp, ds in flags.items()}
    values = {}
    for key, ds in arrays.items():
        arr = read(ds, np.float64)
        if not ours:
            arr[arr == -1] = np.nan  # the reference initialises with -1
        elif key.rsplit("_", 1)[0] in done:
            arr[~done[key.rsplit("_", 1)[0]]] = np.nan
        values[key] = arr
    evaluated = {sp: read(ds, bool) for sp, ds in evaluated.items()}
    return Surface(path, x, y, values, attrs, done, _trajectory(f, path), evaluated or None, k, shape)


def _grid(shape: tuple[int, ...]) -> str:
    return "×".join(f"{v:,}" for v in reversed(shape))


def _trajectory(f: h5py.File, path: str) -> dict | None:
    """The ``trajectory`` group: an optimizer's path (``x``, ``y``, ``epochs``) or a curve between two models
    (``label``, ``t``, ``marks``), checked: at most MAX_TRACE finite points, arrays of one length."""
    if "trajectory" not in f or not isinstance(f["trajectory"], h5py.Group):
        return None
    g = f["trajectory"]
    tx = read_points(g, "x", path, label="trajectory/x")
    n = len(tx)
    epochs = read_points(g, "epochs", path, n, label="trajectory/epochs") if "epochs" in g else None
    if epochs is not None and np.all(epochs == np.round(epochs)) and np.all(np.abs(epochs) < 2 ** 53):
        epochs = epochs.astype(np.int64)  # as written: whole epochs (labels of the path's points)
    out = {"x": tx, "y": read_points(g, "y", path, n, label="trajectory/y"), "epochs": epochs,
           "explained_variance_ratio": [float(v) for v in np.atleast_1d(read_attrs(
               path, g.attrs, ["explained_variance_ratio"]).get("explained_variance_ratio", []))]}
    if "label" in g.attrs:  # a curve drawn over the plane of its models (landscape.connect)
        a = read_attrs(path, g.attrs, ["label", "marks"])
        marks = json.loads(a.get("marks") or "{}")
        if len(marks) > MAX_MARKS or not all(
                isinstance(v, list) and len(v) == 2 and all(isinstance(c, (int, float)) and not isinstance(c, bool)
                                                            and np.isfinite(c) for c in v) for v in marks.values()):
            raise LandscapeError(f"{path!r}: trajectory attribute 'marks' is {shown(a['marks'])!r}; expected at most "
                                 f"{MAX_MARKS} named points as JSON, {{\"A\": [x, y], ...}}; {HINT}")
        out.update(label=a["label"], marks=marks,
                   t=read_points(g, "t", path, n, label="trajectory/t") if "t" in g else None)
    return out


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
