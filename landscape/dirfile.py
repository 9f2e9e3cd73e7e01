"""Reading a direction file (``--directions FILE``) that may come from anywhere (issue #24, hostile files).

A direction file is the reference's HDF5 layout (groups ``xdirection``/``ydirection`` of datasets ``"0".."N-1"``,
one per perturbed tensor), our surface or direction files, or a lean surface's regenerable directions. Each
dataset's shape is compared with the model's tensor before it is read: an HDF5 dataset can declare a
100,000 x 100,000 array whose chunks were never written, so a file of a few kilobytes would otherwise make the
reader allocate 40 GB. Values are read only once they fit, and a NaN or inf anywhere is refused naming the tensor:
``θ* + αδ + βη`` with one NaN in δ is NaN at every point of the grid, the centre included.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import torch
import torch.nn as nn

from landscape.errors import LandscapeError
from landscape.seeded import NORMAL, NORMAL_TIMES_WEIGHTS, WEIGHTS, ZERO, SeededDirections, is_seeded

KINDS = (ZERO, NORMAL, WEIGHTS, NORMAL_TIMES_WEIGHTS)
GROUPS = ("xdirection", "ydirection")
FIX = "pass the direction file made for this model (and --dir-type), or drop --directions for random ones"


def read_direction_file(path: str, model: nn.Module, dir_type: str = "weights"
                        ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """The x (and y) directions a file holds for ``model``, each tensor checked before and after it is read.

    Raises:
        LandscapeError: a missing or non-HDF5 file; groups, datasets or attributes not in the format; a count,
            shape or dtype that does not match the model's tensors; NaN or inf values.
    """
    from landscape.directions import perturbed_tensors
    from landscape.surface import probe_h5

    if not os.path.isfile(path):
        raise LandscapeError(f"direction file not found: {path!r}")
    names, tensors = perturbed_tensors(model, dir_type)
    want = [tuple(t.shape) for t in tensors]
    # The probe (a forked child that may crash on a damaged file) reads exactly what the real read below reads,
    # checks first: never a dataset whose declared size does not match the model. Numpy only in the child: torch's
    # thread pool does not survive a fork (its first parallel operation there would hang).
    probe_h5(path, touch=lambda p: _read(p, names, want, dir_type, model))
    x, y, seeded = _read(path, names, want, dir_type, model)
    if seeded is None:
        return [torch.from_numpy(a) for a in x], [torch.from_numpy(a) for a in y] if y is not None else None
    d = seeded.materialize(model)  # regenerable directions (a lean surface): rebuilt as tensors
    for group, direction in zip(GROUPS, (d.x, d.y)):
        for i, t in enumerate(direction or []):
            _check_finite(path, group, i, names[i], t.numpy())
    return d.x, d.y


def _read(path: str, names: list[str], want: list[tuple], dir_type: str, model: nn.Module):
    """``(x, y, None)`` read from the datasets, or ``(None, None, seeded)`` for regenerable directions."""
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError as e:
        raise LandscapeError(f"cannot open direction file {path!r} ({type(e).__name__}); pass an HDF5 file with "
                             "'xdirection' (and 'ydirection') groups")
    try:
        with f:
            return _contents(f, path, names, want, dir_type, model)
    except LandscapeError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:  # HDF5 failing on damaged structures
        raise LandscapeError(f"{path!r} is a damaged direction file (reading it failed: {type(e).__name__}: "
                             f"{(str(e).splitlines() or [''])[0][:120]}); {FIX}")


def _contents(f: h5py.File, path: str, names: list[str], want: list[tuple], dir_type: str, model: nn.Module):
    if "xdirection" not in f:
        raise LandscapeError(f"{path!r} has no 'xdirection' group; it is not a direction or surface file")
    for g in [g for g in GROUPS if g in f]:
        if not isinstance(f[g], h5py.Group):
            raise LandscapeError(f"{path!r}: {g!r} is a {type(f[g]).__name__}, not a group of one dataset per "
                                 f"tensor ('0'..'{len(want) - 1}'); it is not a direction file")
    if is_seeded(f):
        return None, None, _seeded(f, path, names, want, dir_type, model)
    x, y = (_group(f[g], g, path, names, want) if g in f else None for g in GROUPS)
    return x, y, None


def _group(g: h5py.Group, group: str, path: str, names: list[str], want: list[tuple]) -> list[np.ndarray]:
    n = len(g)
    if n != len(want):
        raise LandscapeError(f"{path!r}: the {group[0]} direction has {n} tensors but the model has {len(want)}; "
                             f"wrong architecture or --dir-type? {FIX}")
    out = []
    for i, (name, shape) in enumerate(zip(names, want)):
        ds = g.get(str(i))
        if not isinstance(ds, h5py.Dataset):
            got = "missing" if ds is None else f"a {type(ds).__name__}"
            raise LandscapeError(f"{path!r}: direction group {group!r} must hold datasets '0'..'{n - 1}', one per "
                                 f"tensor; '{i}' ({name}) is {got}")
        if ds.dtype.kind not in "fiu":
            raise LandscapeError(f"{path!r}: {group} tensor {i} ({name!r}) has dtype {ds.dtype}; direction tensors "
                                 f"are numbers (float32); {FIX}")
        if tuple(ds.shape or ()) != shape:  # checked from the declaration, before any of it is read
            raise LandscapeError(f"{path!r}: {group} tensor {i} ({name!r}) declares shape {tuple(ds.shape or ())} "
                                 f"but the model's {name!r} is {shape}; made for another architecture? {FIX}")
        a = np.asarray(ds[()], dtype=np.float32).reshape(shape)
        _check_finite(path, group, i, name, a)
        out.append(a)
    return out


def _check_finite(path: str, group: str, i: int, name: str, a: np.ndarray) -> None:
    finite = np.isfinite(a)
    if not finite.all():
        raise LandscapeError(f"{path!r}: {group} tensor {i} ({name!r}) holds {int((~finite).sum())} NaN/inf "
                             f"values of {a.size}, which would make every point of the surface NaN; "
                             "regenerate the directions (or pass another file)")


def _seeded(f: h5py.File, path: str, names: list[str], want: list[tuple], dir_type: str, model: nn.Module):
    """Regenerable directions, their small datasets' declared sizes checked before ``SeededDirections.read``."""
    n = len(want)
    for g in [f[k] for k in GROUPS if k in f]:
        for key, most in (("kinds", n), ("keys", n), ("shapes", n * 64)):
            if key in g and (not isinstance(g[key], h5py.Dataset) or (g[key].size or 0) > most):
                raise LandscapeError(f"{path!r}: the regenerable directions' {key!r} holds more than the {n} "
                                     f"entries of the model's tensors; made for another architecture? {FIX}")
        scales = g.get("scales")
        if isinstance(scales, h5py.Group):
            for i, shape in enumerate(want):
                s = scales.get(str(i))
                if s is not None and (not isinstance(s, h5py.Dataset) or (s.size or 0) > max(1, int(np.prod(shape)))):
                    raise LandscapeError(f"{path!r}: the regenerable directions' scales of tensor {i} ({names[i]!r})"
                                         f" are larger than the tensor; made for another architecture? {FIX}")
    try:
        seeded = SeededDirections.read(f, dir_type, f"file:{os.path.basename(path)}")
    except LandscapeError:
        raise
    except (KeyError, IndexError, ValueError, TypeError, OSError) as e:  # an attribute or dataset not in the format
        raise LandscapeError(f"{path!r} records regenerable directions in a form this version cannot read "
                             f"({type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}); {FIX}")
    seeded.check(model, repr(path))
    for i, plan in enumerate(seeded.plans):  # what materializing them would trip on
        sizes = {1, plan.rows}
        if plan.kind not in KINDS or any(s is not None and (s.ndim != 1 or len(s) not in sizes) for s in plan.scales):
            raise LandscapeError(f"{path!r}: the regenerable directions of tensor {i} ({names[i]!r}) have kind "
                                 f"{plan.kind} and scales of {[None if s is None else len(s) for s in plan.scales]} "
                                 f"values (valid: kinds {KINDS}, 1 or {plan.rows} scales); {FIX}")
    return seeded
