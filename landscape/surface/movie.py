"""Reading a landscape movie: surfaces recorded through training (:mod:`landscape.movie`). Torch-free: the
renderer reads these files."""

from __future__ import annotations

import h5py
import numpy as np

from landscape.errors import LandscapeError
from landscape.surface.grid import grid_shape
from landscape.surface.h5io import attr_value
from landscape.surface.validate import (HINT, MAX_FRAMES, check_attr, check_size, dataset, max_points, probed,
                                        read_axis, shown)

FORMAT = "landscape-movie"


def read_movie(path: str) -> dict:
    """A movie file as arrays: ``x``, ``y`` (or ``None``), ``steps``, ``values`` ({key: (F, ...)}, only recorded
    frames), ``attrs``.

    Raises:
        LandscapeError: not a movie; attributes, coordinates or declared sizes that landscape never writes (at most
            :data:`MAX_FRAMES` frames and ``LANDSCAPE_MAX_POINTS`` values per dataset).
    """
    return probed(path, lambda f: _read(f, path), kind="movie")


def _read(f: h5py.File, path: str) -> dict:
    if "format" not in f.attrs or attr_value(f.attrs["format"]) != FORMAT:
        raise LandscapeError(f"{path!r} is not a landscape movie (made by landscape.Recorder or its callbacks)")
    x = read_axis(f, "xcoordinates", path)
    y = read_axis(f, "ycoordinates", path, required=False)
    shape = grid_shape(x, y)
    steps_ds = dataset(f, "steps", path)
    check_size(steps_ds, "steps", path, MAX_FRAMES, f"a movie has at most {MAX_FRAMES:,} frames")
    steps = np.asarray(steps_ds[()], dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(steps)) or np.any(steps != np.round(steps)) or np.any(np.abs(steps) >= 2 ** 53):
        raise LandscapeError(f"{path!r}: steps holds {shown(steps)}; expected whole numbers (the training step or "
                             f"epoch of each frame); {HINT}")
    n, most = len(steps), max_points()
    values = {}
    # Iterated, not looked up: a movie's datasets are named by its splits. Every size is checked before reading.
    for k in [k for k in f if k.endswith(("_loss", "_acc"))]:
        ds = dataset(f, k, path)
        if ds.shape[1:] != shape or ds.shape[0] < n:
            raise LandscapeError(f"{path!r}: {shown(k, 40)} has shape {ds.shape}; expected ({n}, "
                                 f"{', '.join(map(str, shape))}): one frame per step on the grid; {HINT}")
        if n * int(np.prod(shape)) > most:
            raise LandscapeError(f"{path!r}: {n:,} frames of a {'×'.join(map(str, reversed(shape)))} grid are "
                                 f"{n * int(np.prod(shape)):,} values; an animation reads at most {most:,} "
                                 "(LANDSCAPE_MAX_POINTS); the file is too large, not damaged")
        values[k] = np.asarray(ds[:n], dtype=np.float64)
    names = [k for k in f.attrs]
    attrs = {k: check_attr(path, k, attr_value(f.attrs[k])) for k in names[:1000]}
    return {"x": x, "y": y, "steps": steps.astype(np.int64), "values": values, "attrs": attrs, "path": path}
