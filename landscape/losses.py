"""Losses a surface can be computed with: ``cross_entropy`` (default), ``mse``, ``nll``, or any callable
``fn(output, target)``.

Every loss is reduced the same way, whatever the engine: each batch gives per-*unit* values (:class:`Units`:
a loss, a weight and a number correct per sample), summed in float64 on the device; the surface is the summed
loss over the summed weight, exactly as one big batch would give it.

* One class label per sample, output (B, C): the weight is 1 per sample; the surface is the mean over samples.
* Sequence and segmentation targets: ``cross_entropy``/``nll`` on a ``(B, T, V)`` output with ``(B, T)`` token
  targets (a language model: the classes are last), or on a ``(B, C, H, W)`` output with ``(B, H, W)`` targets
  (segmentation: the classes are at dim 1), is the token loss with ``ignore_index=-100``: each sample's loss is the
  sum over its non-ignored tokens and its weight their number, so the surface is the mean over all non-ignored
  tokens of the data (not a mean of per-sequence or per-batch means); accuracy is token accuracy over them.
* A callable returning per-sample values ``(B,)`` weighs each sample 1; one returning ``(B, ...)`` values is
  averaged over all of them (each sample's values are averaged, samples share a shape); one returning a scalar
  is taken as the batch mean and multiplied back by the batch size (same mean, but no per-sample values: the
  standard error then comes from the spread of the batch means, see :mod:`landscape.sampling`).

``mse`` follows the reference implementation of Li et al. for classification (the mean over classes of the
squared difference between the softmax and the one-hot target); with floating-point targets shaped like the
output it is the plain per-sample mean squared error (regression, reconstruction).
``cross_entropy`` with floating-point targets takes them as class probabilities (soft labels) and refuses any
that are not (:meth:`Loss.check`): a regression target through a cross-entropy is a flat, meaningless surface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

import torch
import torch.nn.functional as F

from landscape.errors import LandscapeError
from landscape.settings import qualified_name

LOSSES = ("cross_entropy", "mse", "nll")
IGNORE_INDEX = -100  # the token targets a sequence loss skips (PyTorch's and HuggingFace's convention)
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LossSpec = Union[str, LossFn, "Loss"]


@dataclass
class Units:
    """One batch's per-unit values: ``loss`` (U,), ``weight`` (U,) or ``None`` (1 each), ``correct`` (U,) or
    ``None`` (no accuracy). A unit is a sample, or a whole batch for a loss that gives only its mean (then
    ``loss`` is the batch mean times the batch size and ``weight`` the batch size)."""

    loss: torch.Tensor
    weight: torch.Tensor | None = None
    correct: torch.Tensor | None = None
    per_sample: bool = True
    ratio: bool = False  # token weights: the mean is a ratio of sums (its standard error: landscape.sampling)


def is_class_labels(y: Any) -> bool:
    """Integer targets of shape (N,): class indices."""
    return isinstance(y, torch.Tensor) and y.dim() == 1 and not y.is_floating_point() and not y.is_complex()


def class_dim(out: torch.Tensor, y: Any) -> int | None:
    """Where the classes are in ``out`` for integer targets ``y``: 1 for (B, C) with (B,) and for segmentation
    (B, C, H, W) with (B, H, W); -1 for a language model's (B, T, V) with (B, T); ``None`` if ``y`` are not
    integer targets of such a shape.

    Raises:
        LandscapeError: both readings fit (e.g. (B, T, T) logits for (B, T) targets): say which one.
    """
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.is_complex() or out.dim() != y.dim() + 1:
        return None
    last = tuple(out.shape[:-1]) == tuple(y.shape)
    first = out.shape[0] == y.shape[0] and tuple(out.shape[2:]) == tuple(y.shape[1:])
    if out.dim() == 2:
        return 1 if last else None
    if last and first:
        raise LandscapeError(f"output {tuple(out.shape)} and targets {tuple(y.shape)} fit both a language model's "
                             "(B, T, classes) and a segmentation's (B, classes, ...) layout; pass a callable "
                             "loss=fn(output, target) that says which")
    return -1 if last else (1 if first else None)


def _token_units(out: torch.Tensor, y: torch.Tensor, nll: bool) -> Units:
    """The token loss of a sequence/segmentation output: per sample, the sum over its non-ignored tokens."""
    dim = class_dim(out, y)
    if dim == -1:
        out = out.movedim(-1, 1)
    fn = F.nll_loss if nll else F.cross_entropy
    per = fn(out, y, reduction="none", ignore_index=IGNORE_INDEX).flatten(1)
    keep = (y != IGNORE_INDEX).flatten(1)
    hit = (out.argmax(1) == y).flatten(1) & keep
    return Units(per.sum(1, dtype=torch.float64), keep.sum(1).double(), hit.sum(1).double(), ratio=True)


def _cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y, reduction="none")


def _nll(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.nll_loss(out, y, reduction="none")


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if is_class_labels(y) and out.dim() == 2:
        # the reference's: MSELoss(softmax(outputs), one_hot(targets)), mean over the classes
        target = F.one_hot(y, out.shape[1]).to(out.dtype)
        return (F.softmax(out, dim=1) - target).pow(2).mean(1)
    if out.shape != y.shape or not y.is_floating_point():
        raise LandscapeError(f"mse needs class labels (B,) for a (B, classes) output, or float targets shaped like "
                             f"the output; got output {tuple(out.shape)} and {str(y.dtype)[6:]} targets "
                             f"{tuple(y.shape)}; pass a callable loss=fn(output, target) for anything else")
    return (out - y.to(out.dtype)).pow(2).reshape(out.shape[0], -1).mean(1)


_BUILTIN: dict[str, LossFn] = {"cross_entropy": _cross_entropy, "mse": _mse, "nll": _nll}


@dataclass(frozen=True)
class Loss:
    """A resolved loss: its recorded name and a function returning per-sample values (or a batch mean).

    Attributes:
        name: what the surface file records (``cross_entropy``, ``mse``, ``nll``, or ``module.qualname`` of a
            callable).
        fn: ``fn(output, target)`` -> per-sample losses (B,), per-element losses (B, ...) or a scalar batch mean.
    """

    name: str
    fn: LossFn

    @property
    def builtin(self) -> bool:
        return self.name in _BUILTIN

    def tokens(self, out: torch.Tensor, y: Any) -> bool:
        """Whether this is a token (sequence/segmentation) loss for this output and these targets."""
        return self.name in ("cross_entropy", "nll") and out.dim() > 2 and class_dim(out, y) is not None

    def values(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of one batch as the callable gives it: per-sample values (B, ...) or a scalar mean."""
        v = self.fn(out if out.dtype == torch.float64 else out.float(), y)
        if not isinstance(v, torch.Tensor):
            raise LandscapeError(f"loss {self.name!r} returned a {type(v).__name__}, not a tensor; return "
                                 "per-sample losses (shape (B,)) or their mean")
        if v.dim() != 0 and v.shape[0] != out.shape[0]:
            raise LandscapeError(f"loss {self.name!r} returned shape {tuple(v.shape)} for a batch of "
                                 f"{out.shape[0]}; return per-sample losses (shape (B,)) or their mean")
        return v

    def units(self, out: torch.Tensor, y: Any, accuracy: bool = False) -> Units:
        """One batch's per-unit losses (and numbers correct when ``accuracy``), see :class:`Units`."""
        out = out if out.dtype == torch.float64 else out.float()
        if self.tokens(out, y):
            return _token_units(out, y, self.name == "nll")
        v = self.values(out, y)
        if v.dim() == 0:  # a batch mean: one unit of B samples
            b = out.shape[0]
            return Units((v.double() * b).reshape(1), torch.full((1,), float(b), dtype=torch.float64,
                                                                 device=v.device), per_sample=False)
        correct = (out.argmax(1) == y).double() if accuracy else None
        # per-element values (B, ...): each sample's mean, so the surface is the mean over all of them
        return Units(v.reshape(v.shape[0], -1).double().mean(1), None, correct)

    def check(self, out: torch.Tensor, targets: Any) -> None:
        """Refuse targets that would give a silently meaningless surface (``out``: the model's output on a few
        samples; ``targets``: all the data's targets).

        Raises:
            LandscapeError: ``cross_entropy`` with float targets that are not class probabilities (regression
                or reconstruction targets: the hint is ``mse``).
        """
        if self.name != "cross_entropy" or not isinstance(targets, torch.Tensor) or not targets.is_floating_point():
            return
        probabilities = targets.dim() >= 2 and tuple(targets.shape[1:]) == tuple(out.shape[1:]) and \
            bool((targets >= 0).all()) and bool(torch.allclose(targets.sum(1), torch.ones((), dtype=targets.dtype),
                                                                atol=1e-4))
        if probabilities:
            return
        like = tuple(targets.shape[1:]) == tuple(out.shape[1:])
        raise LandscapeError(f"loss 'cross_entropy' needs class labels (integers) or class probabilities, but the "
                             f"targets are float {tuple(targets.shape)}"
                             + (" shaped like the output (regression or reconstruction targets)" if like else "")
                             + "; pass loss='mse'" + ("" if like else " or a callable loss=fn(output, target)"))


def resolve_loss(spec: LossSpec | None = None) -> Loss:
    """``None``/``"cross_entropy"``/``"mse"``/``"nll"``/a callable/a :class:`Loss` -> a :class:`Loss`.

    Raises:
        LandscapeError: an unknown name, or something that is neither a name nor callable.
    """
    if spec is None:
        spec = "cross_entropy"
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower().replace("-", "_")
        if key in ("ce", "crossentropy"):
            key = "cross_entropy"
        if key not in _BUILTIN:
            raise LandscapeError(f"unknown loss {spec!r}; valid: {', '.join(LOSSES)}, or (from Python) a callable "
                                 "fn(output, target) returning per-sample losses")
        return Loss(key, _BUILTIN[key])
    if callable(spec):
        return Loss(qualified_name(spec), spec)
    raise LandscapeError(f"loss must be a name ({', '.join(LOSSES)}) or a callable; got {type(spec).__name__}")

