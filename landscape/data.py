"""Evaluation/training data as tensors resident on one device (no DataLoader in any hot loop).

Specs (DESIGN section 4): ``digits`` (scikit-learn's 1,797 real 8x8 images; the default), ``cifar10:DIR`` (the
``cifar-10-batches-py`` pickles; DIR is that folder or its parent), ``imagefolder:DIR`` (class sub-folders;
``DIR/train``/``DIR/val`` are used per split when present), ``synthetic[:N]`` (seeded Gaussian images).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field

import numpy as np
import torch

from landscape.errors import LandscapeError

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Pixel mean/std of the digits training split after scaling to [0, 1] (computed once, fixed so that the
# shipped checkpoints and every later evaluation agree).
DIGITS_MEAN = (0.3054,)
DIGITS_STD = (0.3759,)
DIGITS_TRAIN = 1437  # 80 % of 1,797, split by a fixed permutation (seed 0)


@dataclass
class Data:
    """Inputs ``x`` (N, ...) and targets ``y`` (N, ...) for evaluation, resident on ``device`` or streamed to it.

    Images are (N, C, H, W) float32, normalized; targets are class indices (N,) int64 for classification or
    float tensors for regression (``num_classes`` is then ``None``).

    Attributes:
        device: where the batches are evaluated. ``None``: ``x``'s device (the data is resident there).
        streamed: ``x``/``y`` stay in (pinned, on a GPU machine) host memory and every batch is copied to
            ``device`` when it is used; for data larger than the device's memory budget.
    """

    x: torch.Tensor
    y: torch.Tensor
    name: str
    split: str
    num_classes: int | None
    mean: tuple = field(default=())
    std: tuple = field(default=())
    device: torch.device | None = None
    streamed: bool = False
    population: int | None = None  # size of the data set these samples were taken from (None: these are all)
    order: torch.Tensor | None = None  # the order batches() reads the samples in (None: as stored)

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise LandscapeError(f"inputs and targets differ in length: {len(self.x)} inputs, {len(self.y)} "
                                 "targets; pass one target per input")
        self.device = torch.device(self.device) if self.device is not None else self.x.device

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def _replace(self, **kw) -> "Data":
        d = dict(x=self.x, y=self.y, name=self.name, split=self.split, num_classes=self.num_classes,
                 mean=self.mean, std=self.std, device=self.device, streamed=self.streamed,
                 population=self.population, order=self.order)
        d.update(kw)
        return Data(**d)

    def to(self, device: torch.device | str) -> "Data":
        """The same data resident on ``device``."""
        order = self.order.to(device) if self.order is not None else None
        return self._replace(x=self.x.to(device), y=self.y.to(device), device=torch.device(device),
                             streamed=False, order=order)

    def head(self, n: int) -> "Data":
        """The first ``n`` samples (a sample of the whole: :attr:`population` remembers its size)."""
        if self.order is not None:
            raise ValueError("head() of data read in a permuted order")
        return self._replace(x=self.x[:n], y=self.y[:n], population=self.population or len(self))

    def in_order(self, order) -> "Data":
        """The same samples, which :meth:`batches` reads in ``order`` (a permutation of ``range(len)``): no copy
        of the data, each batch is gathered as it is read."""
        return self._replace(order=torch.as_tensor(order, dtype=torch.long, device=self.x.device))

    def with_layout(self, memory_format: torch.memory_format) -> "Data":
        """Images in ``memory_format`` (channels_last for the engine); other inputs unchanged."""
        if self.x.dim() != 4:
            return self
        return self._replace(x=self.x.contiguous(memory_format=memory_format))

    def batches(self, batch_size: int, start: int = 0, stop: int | None = None):
        """``(x, y)`` batches of samples ``start..stop`` (default: all; in :attr:`order` when set) on
        ``self.device``: slices of resident tensors, or copies of streamed ones.

        Streamed batches are copied with ``non_blocking`` from pinned memory, so on a GPU the copy of the next
        batch overlaps the work already queued on the current one.
        """
        stop = len(self) if stop is None else min(stop, len(self))
        for i in range(start, stop, batch_size):
            j = min(i + batch_size, stop)
            if self.order is None:
                xb, yb = self.x[i:j], self.y[i:j]
            else:  # a gathered copy of the batch (indexing keeps channels_last; streamed: a pageable copy)
                xb, yb = self.x[self.order[i:j]], self.y[self.order[i:j]]
            if self.streamed:
                xb = xb.to(self.device, non_blocking=True)
                yb = yb.to(self.device, non_blocking=True)
            yield xb, yb

    @property
    def nbytes(self) -> int:
        return self.x.element_size() * self.x.numel() + self.y.element_size() * self.y.numel()

    @property
    def normalization(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}


def _normalize(x: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((x - m) / s).contiguous()


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise LandscapeError(f"unknown split {split!r}; valid: train, test")


def load_digits(split: str = "train") -> Data:
    """scikit-learn's bundled digits: 1,437 train / 360 test 8x8 grey images, 10 classes."""
    _check_split(split)
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    perm = np.random.RandomState(0).permutation(len(d.target))
    idx = perm[:DIGITS_TRAIN] if split == "train" else perm[DIGITS_TRAIN:]
    x = torch.from_numpy(d.images[idx].astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(d.target[idx].astype(np.int64))
    return Data(_normalize(x, DIGITS_MEAN, DIGITS_STD), y, "digits", split, 10, DIGITS_MEAN, DIGITS_STD)


def _find_cifar_dir(root: str) -> str:
    for cand in (root, os.path.join(root, "cifar-10-batches-py")):
        if os.path.isfile(os.path.join(cand, "test_batch")) or os.path.isfile(os.path.join(cand, "data_batch_1")):
            return cand
    if not os.path.isdir(root):
        raise LandscapeError(f"CIFAR-10 directory not found: {root!r}; pass --data cifar10:DIR where DIR is the "
                             "'cifar-10-batches-py' folder (or its parent)")
    raise LandscapeError(f"no CIFAR-10 batches in {root!r} (expected data_batch_1..5 and test_batch, from the "
                         "python version of CIFAR-10); pass the 'cifar-10-batches-py' folder or its parent")


def read_cifar_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python pickle -> (uint8 images (N, 3, 32, 32), int64 labels)."""
    if not os.path.isfile(path):
        raise LandscapeError(f"CIFAR-10 file missing: {path!r}; the folder needs data_batch_1..5 and test_batch")
    try:
        with open(path, "rb") as f:
            # The official batches are pickles of plain dicts/ndarrays. A restricted unpickler keeps a
            # hostile file in a data folder from running code.
            d = _NumpyOnlyUnpickler(f, encoding="bytes").load()
        data, labels = d[b"data"], d[b"labels"]
        x = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(labels, dtype=np.int64)
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise LandscapeError(f"corrupt CIFAR-10 file {path!r} ({type(e).__name__}: {str(e)[:120]}); "
                             "re-extract cifar-10-python.tar.gz")
    return x, y


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name} in a data file")


def load_cifar10(root: str, split: str = "train") -> Data:
    """CIFAR-10 from the ``cifar-10-batches-py`` pickles, normalized with the standard mean/std."""
    _check_split(split)
    folder = _find_cifar_dir(root)
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = zip(*(read_cifar_batch(os.path.join(folder, f)) for f in files))
    x = torch.from_numpy(np.concatenate(xs)).float().div_(255.0)
    y = torch.from_numpy(np.concatenate(ys))
    return Data(_normalize(x, CIFAR10_MEAN, CIFAR10_STD), y, f"cifar10:{root}", split, 10,
                CIFAR10_MEAN, CIFAR10_STD)


def load_imagefolder(root: str, split: str = "train", image_size: int = 224) -> Data:
    """Class-per-folder images, resized (short side ``image_size*8/7``) and centre-cropped, ImageNet-normalized."""
    _check_split(split)
    if not os.path.isdir(root):
        raise LandscapeError(f"image folder not found: {root!r}; pass --data imagefolder:DIR with one "
                             "sub-folder per class")
    sub = {"train": ("train",), "test": ("val", "test")}[split]
    folder = next((os.path.join(root, s) for s in sub if os.path.isdir(os.path.join(root, s))), root)
    from PIL import Image, UnidentifiedImageError
    from torchvision import transforms

    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    if not classes:
        raise LandscapeError(f"no class sub-folders in {folder!r}; expected DIR/<class>/<image files>")
    tf = transforms.Compose([transforms.Resize(image_size * 8 // 7), transforms.CenterCrop(image_size),
                             transforms.ToTensor()])
    xs, ys = [], []
    exts = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
    for ci, c in enumerate(classes):
        for fn in sorted(os.listdir(os.path.join(folder, c))):
            if not fn.lower().endswith(exts):
                continue
            p = os.path.join(folder, c, fn)
            try:
                with Image.open(p) as im:
                    xs.append(tf(im.convert("RGB")))
            except (UnidentifiedImageError, OSError) as e:
                raise LandscapeError(f"unreadable image {p!r} ({type(e).__name__}); remove or replace it")
            ys.append(ci)
    if not xs:
        raise LandscapeError(f"no images found under {folder!r} (looked for {', '.join(exts)})")
    x = torch.stack(xs)
    return Data(_normalize(x, IMAGENET_MEAN, IMAGENET_STD), torch.tensor(ys), f"imagefolder:{root}", split,
                len(classes), IMAGENET_MEAN, IMAGENET_STD)


def load_synthetic(split: str = "train", n: int = 512, shape: tuple = (3, 32, 32), num_classes: int = 10) -> Data:
    """Seeded Gaussian images with random labels (train and test use different seeds)."""
    _check_split(split)
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    x = torch.randn((n, *shape), generator=g)
    y = torch.randint(0, num_classes, (n,), generator=g)
    return Data(x, y, f"synthetic:{n}", split, num_classes, (0.0,) * shape[0], (1.0,) * shape[0])


def load_data(spec: str = "digits", split: str = "train", samples: int | None = None,
              device: torch.device | str = "cpu", in_channels: int | None = None, image_size: int = 224) -> Data:
    """Load a dataset by spec, keep the first ``samples`` images, and move it to ``device`` once.

    Args:
        spec: ``digits`` | ``cifar10:DIR`` | ``imagefolder:DIR`` | ``synthetic[:N]``.
        split: ``train`` (default, as in Li et al.) or ``test``.
        samples: keep only the first N images (``None``: all).
        device: where the tensors will live for the whole evaluation.
        in_channels: the model's input channels, used to shape synthetic data (1 -> 8x8 grey, else 3x32x32).
        image_size: crop size for ``imagefolder``.

    Raises:
        LandscapeError: unknown spec, missing or corrupt files, bad ``samples``.
    """
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "digits":
        data = load_digits(split)
    elif kind == "cifar10":
        if not arg:
            raise LandscapeError("--data cifar10 needs a directory: --data cifar10:/path/to/cifar-10-batches-py")
        data = load_cifar10(os.path.expanduser(arg), split)
    elif kind == "imagefolder":
        if not arg:
            raise LandscapeError("--data imagefolder needs a directory: --data imagefolder:/path/to/images")
        data = load_imagefolder(os.path.expanduser(arg), split, image_size)
    elif kind == "synthetic":
        try:
            n = int(arg) if arg else 512
        except ValueError:
            raise LandscapeError(f"bad synthetic size {arg!r}; use --data synthetic or synthetic:N (N > 0)")
        if n <= 0:
            raise LandscapeError(f"bad synthetic size {n}; use --data synthetic:N with N > 0")
        shape = (1, 8, 8) if in_channels == 1 else (in_channels or 3, 32, 32)
        data = load_synthetic(split, n, shape)
    else:
        raise LandscapeError(f"unknown dataset {spec!r}; valid: digits, cifar10:DIR, imagefolder:DIR, synthetic[:N]")
    if samples is not None:
        if samples <= 0:
            raise LandscapeError(f"--samples must be a positive integer; got {samples}")
        data = data.head(samples)
    return data.to(device)
