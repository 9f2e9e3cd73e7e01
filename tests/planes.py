"""Surface files of a plane written by hand, with a path over it when given (not a test module itself)."""

from __future__ import annotations

import json

import h5py
import numpy as np

from landscape.surface import read_surface


def write_plane(path, x, y, loss, trajectory: dict | None = None):
    """A finished ``train_loss`` surface over ``x`` x ``y`` at ``path``, read back; ``trajectory``: the group's
    datasets (``x``, ``y``, ``epochs``, ``t``) and attributes (``label``, ``marks`` as a dict,
    ``explained_variance_ratio``), as the writer and ``landscape.connect`` store them."""
    with h5py.File(path, "w") as f:
        f["xcoordinates"], f["ycoordinates"] = x, y
        f["train_loss"], f["train_done"] = loss, np.ones_like(loss, dtype=bool)
        f.attrs.update({"format_version": 1, "arch": "resnet20", "split": "train"})
        if trajectory:
            g = f.create_group("trajectory")
            for k, v in trajectory.items():
                if k in ("label", "marks"):
                    g.attrs[k] = v if k == "label" else json.dumps(v)
                elif k == "explained_variance_ratio":
                    g.attrs[k] = np.array(v)
                else:
                    g[k] = np.asarray(v)
    return read_surface(str(path))
