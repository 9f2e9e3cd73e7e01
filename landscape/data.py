"""Evaluation/training data as tensors resident on one device (no DataLoader in any hot loop).

:class:`Data` is what every engine takes; the readers of the data-set specs (``digits``, ``cifar10:DIR``, ...)
live in :mod:`landscape.datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from landscape.errors import LandscapeError

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


# The readers moved to landscape.datasets (one module per format); these names stay importable from here.
_MOVED = {"load_data": "landscape.datasets", "register_dataset": "landscape.datasets",
          "CIFAR10_MEAN": "landscape.datasets.cifar", "CIFAR10_STD": "landscape.datasets.cifar",
          "IMAGENET_MEAN": "landscape.datasets.images", "IMAGENET_STD": "landscape.datasets.images",
          "read_cifar_batch": "landscape.datasets.cifar"}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'landscape.data' has no attribute {name!r}")
