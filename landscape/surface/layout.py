"""The names a surface file is read by (DESIGN section 6): its format version, the per-point datasets and the
attributes every reader looks up, and :func:`touch_everything`, the read of every part of a file that
:func:`landscape.surface.h5io.probe_h5` does in a child process first.

A leaf module (no I/O module of its own below it), so the HDF5 access layer (``h5io``) and the schema
(``schema``) both build on it without importing each other. Torch-free on purpose.
"""

from __future__ import annotations

import h5py
import numpy as np

from landscape.settings import IDENTITY_ATTRS, SHOWN_ATTRS

FORMAT_VERSION = 1
STAT_KEYS = ("loss_se", "n", "acc_se")  # each point's precision, stored as {split}_loss_se, {split}_n, ...
VALUE_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc", "train_err", "test_err", "max_eig", "min_eig") + \
    tuple(f"{sp}_{k}" for sp in ("train", "test") for k in STAT_KEYS)
EVALUATED_KEYS = ("train_evaluated", "test_evaluated")  # --refine: evaluated (true) or predicted (false)
# Attributes every reader looks up by name (a lookup stays bounded on a damaged file; iterating may not).
BASE_ATTRS = ("format_version", "created", "config", "identity_attrs", "shown_attrs", "ckpt", "engine",
              "direction_eigenvalues", "population", "permutation_seed", "loss_cap")
ATTRS = tuple(dict.fromkeys(BASE_ATTRS + IDENTITY_ATTRS + SHOWN_ATTRS))


def attr_value(v):
    """An HDF5 attribute as a plain Python value (bytes decoded, numpy scalars unwrapped).

    Bytes that are not UTF-8 decode with replacement characters: a foreign file's text is shown, never a
    ``UnicodeDecodeError``.
    """
    v = v.decode("utf-8", "replace") if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v)
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:  # h5py decodes bytes that are not UTF-8 to lone surrogates: unprintable, unwritable
            try:  # the file's own bytes back, then each invalid one as U+FFFD
                v = v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            except UnicodeEncodeError:
                v = v.encode("utf-8", "replace").decode("utf-8")
    return v


def attr_names_of(f: h5py.File) -> list[str]:
    """The attribute names to read: the known ones and those the file's own lists name."""
    names = list(ATTRS)
    for key in ("identity_attrs", "shown_attrs"):
        if key in f.attrs:
            names += [str(attr_value(n)) for n in np.atleast_1d(f.attrs[key])]
    return list(dict.fromkeys(names))


def touch_everything(path: str) -> None:
    """Read every part of a file that landscape ever reads (used by :func:`probe_h5` in a child process)."""
    with h5py.File(path, "r", locking=False) as f:
        for k in attr_names_of(f):
            if k in f.attrs:
                f.attrs[k]
        for key in ("xcoordinates", "ycoordinates") + VALUE_KEYS + ("train_done", "test_done") + EVALUATED_KEYS:
            if key in f:
                _touch(f[key])
        for group in ("xdirection", "ydirection", "trajectory"):
            if group in f:
                g = f[group]
                for name in [str(i) for i in range(len(g))] + ["x", "y", "epochs"]:
                    if name in g:
                        _touch(g[name])
                if "names" in g.attrs:
                    g.attrs["names"]


SLAB_BYTES = 64 << 20


def _touch(ds) -> None:
    """Read all of a dataset, a slab of at most :data:`SLAB_BYTES` at a time: a file that declares a huge array
    (chunks never written read as fill values, so the file stays small) must not make the probe allocate it."""
    if not isinstance(ds, h5py.Dataset) or ds.shape is None or len(ds.shape) == 0 or \
            ds.size * ds.dtype.itemsize <= SLAB_BYTES:
        ds[()]
        return
    rows = max(1, SLAB_BYTES // max(1, ds.size // ds.shape[0] * ds.dtype.itemsize))
    for i in range(0, ds.shape[0], rows):
        ds[i:i + rows]
