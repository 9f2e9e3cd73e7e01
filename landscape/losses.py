"""Losses a surface can be computed with: ``cross_entropy`` (default), ``mse``, ``nll``, or any callable.

Every loss is reduced the same way, whatever the engine: per-sample values are summed in float64 on the device
and divided by the number of samples once, so a surface is the mean loss over the data exactly as one big batch
would give it. A callable that returns a batch mean instead of per-sample values is multiplied back by the
batch size (same mean, but no per-sample values: the standard error then comes from the spread of the batch
means, see :mod:`landscape.sampling`).

``mse`` follows the reference implementation of Li et al. for classification (the mean over classes of the
squared difference between the softmax and the one-hot target); with floating-point targets shaped like the
output it is the plain per-sample mean squared error (regression).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch
import torch.nn.functional as F

from landscape.errors import LandscapeError
from landscape.settings import qualified_name

LOSSES = ("cross_entropy", "mse", "nll")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LossSpec = Union[str, LossFn, "Loss"]


def _cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y, reduction="none")


def _nll(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.nll_loss(out, y, reduction="none")


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if is_class_labels(y) and out.dim() == 2:
        # the reference's: MSELoss(softmax(outputs), one_hot(targets)), mean over the classes
        target = F.one_hot(y, out.shape[1]).to(out.dtype)
        return (F.softmax(out, dim=1) - target).pow(2).mean(1)
    if out.shape != y.shape:
        raise ValueError(f"output shape {tuple(out.shape)} and target shape {tuple(y.shape)} differ")
    return (out - y.to(out.dtype)).pow(2).reshape(out.shape[0], -1).mean(1)


_BUILTIN: dict[str, LossFn] = {"cross_entropy": _cross_entropy, "mse": _mse, "nll": _nll}


def is_class_labels(y: torch.Tensor) -> bool:
    """Integer targets of shape (N,): class indices."""
    return y.dim() == 1 and not y.is_floating_point() and not y.is_complex()


@dataclass(frozen=True)
class Loss:
    """A resolved loss: its recorded name and a function returning per-sample values (or a batch mean).

    Attributes:
        name: what the surface file records (``cross_entropy``, ``mse``, ``nll``, or ``module.qualname`` of a
            callable).
        fn: ``fn(output, target)`` -> per-sample losses (B,) or a scalar batch mean.
    """

    name: str
    fn: LossFn

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

    def batch_sum(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Sum of the per-sample losses of one batch, float64 (a scalar-returning callable: mean x batch)."""
        v = self.values(out, y)
        if v.dim() == 0:
            return v.double() * out.shape[0]
        return v.reshape(v.shape[0], -1).sum(dtype=torch.float64)

    def batch_moments(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sum, sum of squares)`` of one batch's per-sample losses, float64, left on the device.

        A scalar-returning callable has no per-sample values: its batch mean ``m`` counts as ``B`` samples of
        value ``m`` (``B m``, ``B m^2``), and :mod:`landscape.sampling` takes the spread from the batch means.
        """
        v = self.values(out, y)
        if v.dim() == 0:
            m = v.double()
            return m * out.shape[0], m * m * out.shape[0]
        per = v.reshape(v.shape[0], -1).sum(1, dtype=torch.float64)
        return per.sum(), per.square().sum()


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

