"""MNIST and Fashion-MNIST from the standard IDX files, gzipped or not.

``DIR`` may hold the four files itself or be torchvision's root (``DIR/MNIST/raw``, ``DIR/FashionMNIST/raw``).
"""

from __future__ import annotations

import gzip
import os

import numpy as np

from landscape.datasets.base import RawImages, check_split
from landscape.errors import LandscapeError

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_KINDS = {"mnist": ("MNIST", MNIST_MEAN, MNIST_STD), "fashion-mnist": ("FashionMNIST", FASHION_MEAN, FASHION_STD)}


def read_idx(path: str) -> np.ndarray:
    """One IDX file (unsigned bytes) -> its array: magic ``0x0000 08 NDIM``, NDIM big-endian int32 sizes, data."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip's BadGzipFile is an OSError
        raise LandscapeError(f"unreadable IDX file {path!r} ({type(e).__name__}: {str(e)[:100]}); re-download it")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise LandscapeError(f"{path!r} is not an unsigned-byte IDX file (bad magic number); expected the "
                             "MNIST-format files")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    start = 4 + 4 * ndim
    n = int(np.prod(dims))
    if len(raw) - start != n:
        raise LandscapeError(f"IDX file {path!r} holds {len(raw) - start} bytes of data for shape {dims} "
                             f"({n} expected): truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(dims)


def _find(root: str, kind: str, name: str) -> str | None:
    sub = _KINDS[kind][0]
    for folder in (root, os.path.join(root, sub, "raw"), os.path.join(root, "raw")):
        for cand in (name, name + ".gz"):
            if os.path.isfile(os.path.join(folder, cand)):
                return os.path.join(folder, cand)
    return None


def load_idx(kind: str, root: str, split: str = "train") -> RawImages:
    """``mnist`` or ``fashion-mnist`` images (N, 1, 28, 28) in [0, 1] and labels."""
    check_split(split)
    if not os.path.isdir(root):
        raise LandscapeError(f"{kind} directory not found: {root!r}; pass --data {kind}:DIR with the IDX files")
    paths = [_find(root, kind, n) for n in _FILES[split]]
    missing = [n for n, p in zip(_FILES[split], paths) if p is None]
    if missing:
        raise LandscapeError(f"no {', '.join(missing)}[.gz] in {root!r} (nor in {_KINDS[kind][0]}/raw); "
                             "pass the folder holding the IDX files")
    x, y = read_idx(paths[0]), read_idx(paths[1])
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise LandscapeError(f"{kind} files in {root!r} do not match: images {list(x.shape)}, labels "
                             f"{list(y.shape)}; expected (N, H, W) images and N labels")
    _, mean, std = _KINDS[kind]
    return RawImages((x.astype(np.float32) / 255.0)[:, None], y.astype(np.int64), f"{kind}:{root}", 10, mean, std)
