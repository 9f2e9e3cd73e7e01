"""The curvature file (HDF5), written atomically: a crash never leaves a half-written file under the real name.

Layout::

    eigenvalues        (k,) float64, descending
    residuals          (k,) float64, the Ritz residuals ||H u - lambda u||
    min_eigenvalue     () float64;  min_residual ()
    trace, trace_se    () float64 (when the trace was estimated); trace_samples (M,) the per-probe z^T H z
    eigenvectors/I     for I = 0..k-1: a direction group, datasets "0".."N-1" (float32) over *all* of the model's
                       named_parameters() in order, zeros for tensors outside the selection; attrs ``names``,
                       ``selected`` (bool per tensor), ``eigenvalue``
    min_eigenvector    the same layout, for the smallest eigenvalue
    density/grid, density/density, density/nodes, density/weights   (with --density; attr sigma)
    attrs              ckpt, sha256, arch, dataset, split, n_samples, params, seed, torch_version, ...

The direction groups use the layout of ``landscape.surface.write_direction`` (the reference's), so an eigenvector
can be read back with ``landscape.surface.read_direction`` and used as a plot direction.
"""

from __future__ import annotations

import io
import os
from typing import Any, Sequence

import h5py
import numpy as np

from landscape.errors import LandscapeError
from landscape.paths import atomic_open, write_error

FORMAT = "landscape-hessian"
FORMAT_VERSION = 1


def write_direction_group(h5: h5py.File, group: str, tensors: Sequence, names: Sequence[str],
                          **attrs: Any) -> None:
    """One vector as ``group/"0".."N-1"`` with attr ``names`` (as ``surface.write_direction`` stores them)."""
    g = h5.create_group(group)
    for i, t in enumerate(tensors):
        g.create_dataset(str(i), data=np.asarray(_numpy(t), dtype=np.float32))
    g.attrs["names"] = np.array([str(n) for n in names], dtype=h5py.string_dtype())
    for k, v in attrs.items():
        g.attrs[k] = v


def _numpy(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def write_hessian_file(path: str, *, eigenvalues: Sequence[float], residuals: Sequence[float],
                       eigenvectors: Sequence[Sequence] = (), names: Sequence[str] = (),
                       selected: Sequence[bool] = (), min_eigenvalue: float | None = None,
                       min_residual: float | None = None, min_eigenvector: Sequence | None = None,
                       trace: float | None = None, trace_se: float | None = None,
                       trace_samples: Sequence[float] | None = None, density: dict | None = None,
                       attrs: dict | None = None) -> str:
    """Write the curvature file to ``path`` via a temporary name in the same folder and ``os.replace``.

    Args:
        eigenvectors: one per-tensor list per eigenvalue, over all ``names`` (see the module docstring).
        density: ``{"grid", "density", "nodes", "weights", "sigma"}`` or None.
        attrs: scalar/string metadata for the file's attributes (None values are skipped).

    Returns:
        The absolute path written.

    Raises:
        LandscapeError: the folder is missing or not writable.
    """
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise LandscapeError(f"output folder {folder!r} does not exist; create it or pass another --out")
    buf = io.BytesIO()  # built in memory: HDF5 can crash closing a file whose disk filled up under it
    try:
        with h5py.File(buf, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            for k, v in (attrs or {}).items():
                if v is not None:  # str(): subclasses such as torch.__version__ would become numpy unicode
                    f.attrs[k] = str(v) if isinstance(v, str) else v
            f.create_dataset("eigenvalues", data=np.asarray(eigenvalues, dtype=np.float64))
            f.create_dataset("residuals", data=np.asarray(residuals, dtype=np.float64))
            mask = np.asarray(selected, dtype=bool)
            f.create_group("eigenvectors")
            for i, (vec, lam) in enumerate(zip(eigenvectors, eigenvalues)):
                write_direction_group(f, f"eigenvectors/{i}", vec, names, selected=mask, eigenvalue=float(lam))
            if min_eigenvalue is not None:
                f.create_dataset("min_eigenvalue", data=np.float64(min_eigenvalue))
                f.create_dataset("min_residual", data=np.float64(np.nan if min_residual is None else min_residual))
            if min_eigenvector is not None:
                write_direction_group(f, "min_eigenvector", min_eigenvector, names, selected=mask,
                                      eigenvalue=float(min_eigenvalue))
            if trace is not None:
                f.create_dataset("trace", data=np.float64(trace))
                f.create_dataset("trace_se", data=np.float64(np.nan if trace_se is None else trace_se))
                if trace_samples is not None:
                    f.create_dataset("trace_samples", data=np.asarray(_numpy(trace_samples), dtype=np.float64))
            if density is not None:
                g = f.create_group("density")
                for k in ("grid", "density", "nodes", "weights"):
                    g.create_dataset(k, data=np.asarray(_numpy(density[k]), dtype=np.float64))
                g.attrs["sigma"] = float(density["sigma"])
        with atomic_open(path, "wb") as out:
            out.write(buf.getbuffer())
    except OSError as e:
        raise write_error(path, e) from e
    return path


# Declared sizes a curvature file may have (read_hessian_file checks them before reading anything): its short
# series (eigenvalues, residuals, trace samples: one per Lanczos step or probe), a density's points, the eigenvectors
# (top-k and the smallest: a few; their tensors: surface.validate.check_tensor_groups).
MAX_SERIES = 100_000
MAX_DENSITY = 1_000_000
MAX_VECTORS = 1_000
HINT = "pass a file written by python -m landscape.hessian"


def check_declared_sizes(f: h5py.File, path: str) -> None:
    """Refuse, before reading any of it, a curvature file whose datasets declare more than a file of ours holds:
    short series past :data:`MAX_SERIES` values, a density past :data:`MAX_DENSITY`, more than :data:`MAX_VECTORS`
    eigenvectors, or eigenvectors a reader could not hold (:func:`~landscape.surface.validate.check_tensor_groups`).
    Links to other files are refused."""
    from landscape.surface.validate import check_size, check_tensor_groups, dataset

    for key in ("eigenvalues", "residuals", "trace_samples", "min_eigenvalue", "min_residual", "trace", "trace_se"):
        ds = dataset(f, key, path, required=key in ("eigenvalues", "residuals"))
        if ds is not None:
            check_size(ds, key, path, MAX_SERIES, HINT)
    if "density" in f:
        for key in ("grid", "density", "nodes", "weights"):
            check_size(dataset(f, f"density/{key}", path), f"density/{key}", path, MAX_DENSITY, HINT)
    groups = [f"eigenvectors/{k}" for k in (f["eigenvectors"].keys() if "eigenvectors" in f else [])]
    groups += ["min_eigenvector"] if "min_eigenvector" in f else []
    if len(groups) > MAX_VECTORS:
        raise LandscapeError(f"{path!r} declares {len(groups):,} eigenvectors; at most {MAX_VECTORS:,} are read; "
                             f"{HINT}")
    check_tensor_groups(f, groups, path, HINT)


def read_hessian_file(path: str) -> dict:
    """Everything in a curvature file as numpy values: ``eigenvalues``, ``eigenvectors`` (list of per-tensor
    lists), ``names``, ``selected``, ``min_eigenvalue``, ``trace``, ``trace_se``, ``density`` (dict or None),
    ``attrs``.

    Raises:
        LandscapeError: a missing file or one that is not a curvature file.
    """
    if not os.path.isfile(path):
        raise LandscapeError(f"curvature file not found: {path!r}")
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError as e:
        raise LandscapeError(f"cannot open {path!r} as HDF5 ({type(e).__name__}); pass a file written by "
                             "python -m landscape.hessian")
    with f:
        if f.attrs.get("format") != FORMAT or "eigenvalues" not in f:
            raise LandscapeError(f"{path!r} is not a curvature file (no format={FORMAT!r} attribute)")
        check_declared_sizes(f, path)

        def group(name: str) -> list[np.ndarray]:
            g = f[name]
            return [np.asarray(g[str(i)][()]) for i in range(len(g.keys()))]

        vec_groups = sorted(f["eigenvectors"].keys(), key=int)
        first = f[f"eigenvectors/{vec_groups[0]}"] if vec_groups else f.get("min_eigenvector")
        out = {
            "eigenvalues": np.asarray(f["eigenvalues"][()]),
            "residuals": np.asarray(f["residuals"][()]),
            "eigenvectors": [group(f"eigenvectors/{k}") for k in vec_groups],
            "names": [s.decode() if isinstance(s, bytes) else str(s) for s in first.attrs["names"]]
                      if first is not None else [],
            "selected": np.asarray(first.attrs["selected"]) if first is not None else np.zeros(0, bool),
            "min_eigenvector": group("min_eigenvector") if "min_eigenvector" in f else None,
            "density": ({k: np.asarray(f[f"density/{k}"][()]) for k in ("grid", "density", "nodes", "weights")}
                        | {"sigma": float(f["density"].attrs["sigma"])}) if "density" in f else None,
            "attrs": {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()},
        }
        for k in ("min_eigenvalue", "min_residual", "trace", "trace_se"):
            out[k] = float(f[k][()]) if k in f else None
        out["trace_samples"] = np.asarray(f["trace_samples"][()]) if "trace_samples" in f else None
    return out
