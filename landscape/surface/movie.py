"""Reading a landscape movie: surfaces recorded through training (:mod:`landscape.movie`). Torch-free: the
renderer reads these files."""

from __future__ import annotations

import numpy as np

from landscape.errors import LandscapeError
from landscape.surface.h5io import attr_value, open_h5

FORMAT = "landscape-movie"


def read_movie(path: str) -> dict:
    """A movie file as arrays: ``x``, ``y`` (or ``None``), ``steps``, ``values`` ({key: (F, ...)}, only recorded
    frames), ``attrs``."""
    with open_h5(path, "r") as f:
        if attr_value(f.attrs.get("format", "")) != FORMAT:
            raise LandscapeError(f"{path!r} is not a landscape movie (made by landscape.Recorder or its callbacks)")
        steps = np.asarray(f["steps"][()], dtype=np.int64)
        n = len(steps)
        values = {k: np.asarray(f[k][:n], dtype=np.float64) for k in f if k.endswith(("_loss", "_acc"))}
        return {"x": np.asarray(f["xcoordinates"][()], dtype=np.float64),
                "y": np.asarray(f["ycoordinates"][()], dtype=np.float64) if "ycoordinates" in f else None,
                "steps": steps, "values": values, "attrs": {k: attr_value(v) for k, v in f.attrs.items()},
                "path": path}
