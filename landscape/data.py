"""Evaluation/training data as tensors resident on one device (no DataLoader in any hot loop).

:class:`Data` is what every engine takes; the readers of the data-set specs (``digits``, ``cifar10:DIR``, ...)
live in :mod:`landscape.datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from landscape import batching
from landscape.batching import LAYOUTS
from landscape.errors import LandscapeError

# Pixel mean/std of the digits training split after scaling to [0, 1] (computed once, fixed so that the
# shipped checkpoints and every later evaluation agree).
DIGITS_MEAN = (0.3054,)
DIGITS_STD = (0.3759,)
DIGITS_TRAIN = 1437  # 80 % of 1,797, split by a fixed permutation (seed 0)


@dataclass
class Data:
    """Inputs ``x`` and targets ``y`` (one row per sample) for evaluation, resident on ``device`` or streamed to it.

    Images are (N, C, H, W) float32, normalized; targets are class indices (N,) int64 for classification or
    float tensors for regression (``num_classes`` is then ``None``). From Python, ``x`` may be any batch structure
    of :mod:`landscape.batching` (a tuple or dict of tensors, e.g. token ids and an attention mask) and ``y`` may
    be ``None`` (inputs alone, or a dict carrying its own ``labels``); ``layout`` says how a batch is put back
    together for the model and an objective.

    Attributes:
        device: where the batches are evaluated. ``None``: ``x``'s device (the data is resident there).
        streamed: ``x``/``y`` stay in (pinned, on a GPU machine) host memory and every batch is copied to
            ``device`` when it is used; for data larger than the device's memory budget.
    """

    x: Any
    y: Any
    name: str
    split: str
    num_classes: int | None
    mean: tuple = field(default=())
    std: tuple = field(default=())
    device: torch.device | None = None
    streamed: bool = False
    population: int | None = None  # size of the data set these samples were taken from (None: these are all)
    order: torch.Tensor | None = None  # the order batches() reads the samples in (None: as stored)
    layout: str = "pair"  # landscape.batching.LAYOUTS

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise LandscapeError(f"unknown data layout {self.layout!r}; valid: {', '.join(LAYOUTS)}")
        n = batching.length(self.x, "the inputs")
        if self.y is not None and batching.length(self.y, "the targets") != n:
            raise LandscapeError(f"inputs and targets differ in length: {n} inputs, "
                                 f"{batching.length(self.y)} targets; pass one target per input")
        self.device = torch.device(self.device) if self.device is not None else self.tensors[0].device

    def __len__(self) -> int:
        return batching.length(self.x)

    @property
    def tensors(self) -> list[torch.Tensor]:
        """Every tensor of the data (inputs first)."""
        return batching.leaves(self.x) + batching.leaves(self.y)

    @property
    def targets(self) -> torch.Tensor | None:
        """The loss's targets: ``y``, or a dict's ``labels`` (``None`` without any)."""
        return batching.targets_of(self.x, self.y, self.layout)

    @property
    def images(self) -> bool:
        """The inputs are one 4-D float tensor (N, C, H, W)."""
        return isinstance(self.x, torch.Tensor) and self.x.dim() == 4 and self.x.is_floating_point()

    @property
    def tokens(self) -> int | None:
        """Tokens per sample of sequence inputs (the longest integer (N, T) input), else ``None``."""
        lengths = [t.shape[1] for t in batching.leaves(self.x) if t.dim() == 2 and not t.is_floating_point()]
        return int(max(lengths)) if lengths else None

    def _replace(self, **kw) -> "Data":
        d = dict(x=self.x, y=self.y, name=self.name, split=self.split, num_classes=self.num_classes,
                 mean=self.mean, std=self.std, device=self.device, streamed=self.streamed,
                 population=self.population, order=self.order, layout=self.layout)
        d.update(kw)
        return Data(**d)

    def _map(self, fn, **kw) -> "Data":
        return self._replace(x=batching.tree_map(fn, self.x), y=batching.tree_map(fn, self.y), **kw)

    def to(self, device: torch.device | str) -> "Data":
        """The same data resident on ``device``."""
        order = self.order.to(device) if self.order is not None else None
        return self._map(lambda t: t.to(device), device=torch.device(device), streamed=False, order=order)

    def head(self, n: int) -> "Data":
        """The first ``n`` samples (a sample of the whole: :attr:`population` remembers its size)."""
        if self.order is not None:
            raise ValueError("head() of data read in a permuted order")
        return self._map(lambda t: t[:n], population=self.population or len(self))

    def in_order(self, order) -> "Data":
        """The same samples, which :meth:`batches` reads in ``order`` (a permutation of ``range(len)``): no copy
        of the data, each batch is gathered as it is read."""
        return self._replace(order=torch.as_tensor(order, dtype=torch.long, device=self.tensors[0].device))

    def with_layout(self, memory_format: torch.memory_format) -> "Data":
        """Images in ``memory_format`` (channels_last for the engine); other inputs unchanged."""
        if not self.images:
            return self
        return self._replace(x=self.x.contiguous(memory_format=memory_format))

    def batches(self, batch_size: int, start: int = 0, stop: int | None = None):
        """``(x, y)`` batches of samples ``start..stop`` (default: all; in :attr:`order` when set) on
        ``self.device``: slices of resident tensors, or copies of streamed ones (``x``, ``y`` in the data's
        structure; ``y`` is ``None`` without targets).

        Streamed batches are copied with ``non_blocking`` from pinned memory, so on a GPU the copy of the next
        batch overlaps the work already queued on the current one.
        """
        stop = len(self) if stop is None else min(stop, len(self))
        for i in range(start, stop, batch_size):
            j = min(i + batch_size, stop)
            if self.order is None:
                take = (lambda t, i=i, j=j: t[i:j])
            else:  # a gathered copy of the batch (indexing keeps channels_last; streamed: a pageable copy)
                idx = self.order[i:j]
                take = (lambda t, idx=idx: t[idx])
            if self.streamed:
                pick = take
                take = (lambda t: pick(t).to(self.device, non_blocking=True))
            yield batching.tree_map(take, self.x), batching.tree_map(take, self.y)

    @property
    def nbytes(self) -> int:
        return batching.nbytes(self.x) + batching.nbytes(self.y)

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
