"""CIFAR-10 and CIFAR-100 from their official python pickles (``cifar-10-batches-py``, ``cifar-100-python``).

The pickles are read with a restricted unpickler (numpy arrays and plain containers only), so a hostile file in
a data folder cannot run code. Keys may be bytes (the official files, read as Python 2 pickles) or str (files
re-saved by Python 3 tools).
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from landscape.datasets.base import RawImages, check_split
from landscape.errors import LandscapeError

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

_LAYOUT = {  # kind -> (folder name, train files, test files, label key, classes, mean, std)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10,
                CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100, CIFAR100_MEAN, CIFAR100_STD),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name} in a data file")


def _find_dir(root: str, kind: str) -> str:
    folder, train, test = _LAYOUT[kind][:3]
    for cand in (root, os.path.join(root, folder)):
        if any(os.path.isfile(os.path.join(cand, f)) for f in train + test):
            return cand
    label = "CIFAR-10" if kind == "cifar10" else "CIFAR-100"
    if not os.path.isdir(root):
        raise LandscapeError(f"{label} directory not found: {root!r}; pass --data {kind}:DIR where DIR is the "
                             f"'{folder}' folder (or its parent)")
    raise LandscapeError(f"no {label} files in {root!r} (expected {', '.join(train + test)}, from the python "
                         f"version of {label}); pass the '{folder}' folder or its parent")


def read_cifar_batch(path: str, label_key: str = "labels", label: str = "CIFAR-10") -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python pickle -> (uint8 images (N, 3, 32, 32), int64 labels)."""
    if not os.path.isfile(path):
        raise LandscapeError(f"{label} file missing: {path!r}; the folder needs every file of the python version")
    try:
        with open(path, "rb") as f:
            d = _NumpyOnlyUnpickler(f, encoding="bytes").load()
        # bytes keys in the official files; str keys in files re-saved by Python 3
        d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
        x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(d[label_key], dtype=np.int64)
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise LandscapeError(f"corrupt {label} file {path!r} ({type(e).__name__}: {str(e)[:120]}); re-extract the "
                             "python version's archive")
    return x, y


def load_cifar(kind: str, root: str, split: str = "train") -> RawImages:
    """``cifar10`` or ``cifar100`` images in [0, 1] with their standard normalization as the default."""
    check_split(split)
    _, train, test, label_key, classes, mean, std = _LAYOUT[kind]
    folder = _find_dir(root, kind)
    label = "CIFAR-10" if kind == "cifar10" else "CIFAR-100"
    xs, ys = zip(*(read_cifar_batch(os.path.join(folder, f), label_key, label)
                   for f in (train if split == "train" else test)))
    x = np.concatenate(xs).astype(np.float32) / 255.0
    return RawImages(x, np.concatenate(ys), f"{kind}:{root}", classes, mean, std)
