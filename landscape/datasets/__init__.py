"""Data sets by spec string (``--data KIND[:ARG]``), normalized as chosen, as tensors ready for the engine.

Built in: ``digits`` (scikit-learn's 1,797 real 8x8 images; the default), ``cifar10:DIR``, ``cifar100:DIR``
(the python pickles), ``mnist:DIR``, ``fashion-mnist:DIR`` (IDX files, gzipped or not), ``imagefolder:DIR``
(class sub-folders), ``synthetic[:N]`` (seeded Gaussian images), and for language models ``text:FILE`` and
``jsonl:FILE`` (:mod:`landscape.datasets.text`). Any other kind: :func:`register_dataset`.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch

from landscape.data import DIGITS_MEAN, DIGITS_STD, DIGITS_TRAIN, Data
from landscape.datasets.base import SPLITS, RawImages, check_split
from landscape.datasets.cifar import load_cifar
from landscape.datasets.idx import load_idx
from landscape.datasets.images import load_imagefolder
from landscape.datasets.normalization import resolve_normalization
from landscape.datasets.text import load_text
from landscape.errors import LandscapeError

_LOADERS: dict[str, tuple[Callable, bool]] = {}  # kind -> (loader, needs an argument)


def register_dataset(kind: str, loader: Callable[..., Any], *, needs_arg: bool = True,
                     overwrite: bool = False) -> Callable:
    """Make ``--data KIND:ARG`` (and ``data="KIND:ARG"`` from Python) load through ``loader(arg, split)``.

    The loader returns a :class:`~landscape.datasets.base.RawImages` (pixels in [0, 1] and the data set's
    customary mean/std: ``--normalization`` then applies), or a :class:`~landscape.data.Data` / an ``(inputs,
    targets)`` pair that is already what the model expects (``--normalization`` must stay ``default``).

    Raises:
        LandscapeError: a kind already registered (without ``overwrite``) or a loader that is not callable.
    """
    key = kind.strip().lower()
    if not callable(loader):
        raise LandscapeError(f"register_dataset({kind!r}, ...) needs a callable loader")
    if key in _LOADERS and not overwrite:
        raise LandscapeError(f"data kind {key!r} is already registered; pick another name or pass overwrite=True")
    _LOADERS[key] = (loader, needs_arg)
    return loader


def kinds() -> list[str]:
    return list(_LOADERS)


def _digits(arg: str, split: str) -> RawImages:
    """scikit-learn's bundled digits: 1,437 train / 360 test 8x8 grey images, 10 classes."""
    if arg:
        raise LandscapeError(f"--data digits takes no argument (it is bundled with scikit-learn); got "
                             f"'digits:{arg[:80]}'; pass --data digits")
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    perm = np.random.RandomState(0).permutation(len(d.target))
    idx = perm[:DIGITS_TRAIN] if split == "train" else perm[DIGITS_TRAIN:]
    x = (d.images[idx].astype(np.float32) / 16.0)[:, None]
    return RawImages(x, d.target[idx].astype(np.int64), "digits", 10, DIGITS_MEAN, DIGITS_STD)


def _synthetic(arg: str, split: str, in_channels: int | None = None) -> RawImages:
    """Seeded Gaussian images with random labels (train and test use different seeds); 8x8 grey for a
    1-channel model, 3x32x32 otherwise."""
    try:
        n = int(arg) if arg else 512
    except ValueError:
        raise LandscapeError(f"bad synthetic size {arg!r}; use --data synthetic or synthetic:N (N > 0)")
    if n <= 0:
        raise LandscapeError(f"bad synthetic size {n}; use --data synthetic:N with N > 0")
    shape = (1, 8, 8) if in_channels == 1 else (in_channels or 3, 32, 32)
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    x = torch.randn((n, *shape), generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return RawImages(x.numpy(), y.numpy(), f"synthetic:{n}", 10, (0.0,) * shape[0], (1.0,) * shape[0])


for _kind in ("cifar10", "cifar100"):
    register_dataset(_kind, lambda arg, split, k=_kind: load_cifar(k, arg, split))
for _kind in ("mnist", "fashion-mnist"):
    register_dataset(_kind, lambda arg, split, k=_kind: load_idx(k, arg, split))
register_dataset("imagefolder", lambda arg, split, image_size=None: load_imagefolder(arg, split, image_size))
for _kind in ("text", "jsonl"):
    register_dataset(_kind, lambda arg, split, k=_kind, **text: load_text(k, arg, split, **text))
register_dataset("digits", _digits, needs_arg=False)
register_dataset("synthetic", _synthetic, needs_arg=False)


def load_data(spec: str = "digits", split: str = "train", samples: int | None = None,
              device: torch.device | str = "cpu", in_channels: int | None = None, image_size: int | None = None,
              normalization: str = "default", recorded_normalization: dict | None = None,
              text: dict | None = None) -> Data:
    """Load a data set by spec, normalize it, keep the first ``samples`` images, and move it to ``device`` once.

    Args:
        spec: ``KIND`` or ``KIND:ARG`` (see the module docstring; ``~`` in paths is expanded).
        split: ``train`` (default, as in Li et al.) or ``test``.
        samples: keep only the first N images (``None``: all).
        device: where the tensors will live for the whole evaluation.
        in_channels: the model's input channels (shapes ``synthetic`` data).
        image_size: ``imagefolder``: resize the shorter side to N and centre-crop N x N (default: the images'
            own size, which they must then share).
        normalization: ``default`` | ``reference`` | ``none`` | ``MEAN/STD``
            (:mod:`landscape.datasets.normalization`).
        recorded_normalization: the checkpoint's recorded ``{"mean", "std"}``, what ``default`` uses first; a dict
            without them (``{}``: the model is the user's own and records none) makes ``default`` an error that
            asks for ``dataset``, ``none`` or ``MEAN/STD``.
        text: ``text:``/``jsonl:`` settings: ``tokenizer_dir``, ``seq_len``, ``text_key``.

    Raises:
        LandscapeError: unknown spec, missing or corrupt files, bad ``samples`` or normalization.
    """
    kind, _, arg = str(spec).partition(":")
    kind = kind.strip().lower()
    check_split(split)
    if kind not in _LOADERS:
        raise LandscapeError(f"unknown dataset {spec!r}; valid: digits, cifar10:DIR, cifar100:DIR, mnist:DIR, "
                             "fashion-mnist:DIR, imagefolder:DIR, synthetic[:N], text:FILE, jsonl:FILE"
                             + "".join(f", {k}:ARG" for k in _LOADERS if k not in _BUILTIN))
    loader, needs_arg = _LOADERS[kind]
    if needs_arg and not arg:
        raise LandscapeError(f"--data {kind} needs a directory: --data {kind}:/path/to/data")
    if samples is not None and samples <= 0:
        raise LandscapeError(f"--samples must be a positive integer; got {samples}")
    extra = {"image_size": image_size} if kind == "imagefolder" else {"in_channels": in_channels} \
        if kind == "synthetic" else dict(text or {}) if kind in ("text", "jsonl") else {}
    raw = loader(os.path.expanduser(arg) if arg else arg, split, **extra)
    if isinstance(raw, Data) and kind in ("text", "jsonl"):
        if str(normalization) != "default":
            raise LandscapeError(f"--normalization {normalization!r} applies to images; {kind}: data is token ids")
        data = raw.head(samples) if samples else raw
    elif isinstance(raw, RawImages):
        data = _normalized(raw, split, samples, normalization, recorded_normalization)
    else:
        if str(normalization) != "default":
            raise LandscapeError(f"--normalization {normalization!r} applies to data sets that return raw pixels; "
                                 f"the loader of {kind!r} returns model-ready inputs")
        from landscape.datasource import resolve_data

        data = resolve_data(raw, split=split, samples=samples, device="cpu")
        data.name = spec
    return data.to(device)


def _normalized(raw: RawImages, split: str, samples: int | None, choice: str, recorded: dict | None) -> Data:
    x = raw.x[:samples] if samples else raw.x
    y = raw.y[:samples] if samples else raw.y
    mean, std = resolve_normalization(choice, x.shape[1], (raw.mean, raw.std), recorded)
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    # the first `samples` of a split are a sample of it: its size is the standard errors' population
    population = len(raw.x) if samples and samples < len(raw.x) else None
    return Data(((t - m) / s).contiguous(), torch.from_numpy(np.ascontiguousarray(y)), raw.name, split,
                raw.num_classes, mean, std, population=population)


_BUILTIN = frozenset(_LOADERS)

__all__ = ["load_data", "register_dataset", "kinds", "RawImages", "SPLITS"]
