"""Hessian-vector products of the mean loss over resident data tensors (no DataLoader, no copies per call).

The loss is ``L(theta) = (1/N) sum_n l(f(x_n; theta), y_n)``: each batch contributes its loss *sum* and the total
is divided by ``N`` once, so the result does not depend on the batch size (the last, smaller batch included).
The model is put in eval mode: BatchNorm uses its running statistics, so ``L`` is a fixed function of the
parameters and the Hessian is that of the loss the landscape plots show.

The operator reads the model's *live* parameters on every call, so the caller can move the model to a
perturbed point ``theta* + a*d + b*e`` (in place, under ``torch.no_grad()``) and ask for the curvature there
without building a new operator.
"""

from __future__ import annotations

from typing import Callable, Sequence, Union

import torch
import torch.nn as nn

from landscape.errors import LandscapeError
from landscape.losses import Loss
from landscape.losses import resolve_loss as resolve_surface_loss

PARAMS = ("weights", "all")
METHODS = ("double_backward", "forward_over_reverse")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def select_parameters(model: nn.Module, params: Union[str, Sequence[str]] = "weights"
                      ) -> tuple[list[str], list[torch.Tensor]]:
    """The trainable parameters whose curvature is measured, with their names, in ``parameters()`` order.

    Args:
        model: any module.
        params: ``'weights'`` (the reference's choice: tensors with ``dim() > 1``, i.e. conv/linear weights, no
            biases or BatchNorm affine parameters), ``'all'``, or an explicit list of parameter names.

    Raises:
        LandscapeError: an unknown choice or name, or no trainable tensor selected.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if isinstance(params, str):
        if params not in PARAMS:
            raise LandscapeError(f"unknown params {params!r}; valid: {', '.join(PARAMS)} (or a list of names)")
        chosen = [(n, p) for n, p in named if params == "all" or p.dim() > 1]
    else:
        wanted = list(params)
        known = {n for n, _ in named}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise LandscapeError(f"unknown or frozen parameter names {unknown[:5]}; the model's trainable ones "
                                 f"start with {sorted(known)[:5]}")
        chosen = [(n, p) for n, p in named if n in set(wanted)]
    if not chosen:
        what = params if isinstance(params, str) else "the given names"
        raise LandscapeError(f"the model has no trainable tensors for params={what!r} "
                             f"({len(named)} trainable in all); nothing to differentiate")
    floats = [n for n, p in chosen if not p.is_floating_point()]
    if floats:
        raise LandscapeError(f"parameters {floats[:5]} are not floating point; the Hessian needs real tensors")
    return [n for n, _ in chosen], [p for _, p in chosen]


def resolve_loss(loss: Union[str, LossFn, Loss]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A function ``(out, y) -> loss summed over the batch``, in the model's dtype, for any loss a surface takes.

    ``loss`` is a name of :mod:`landscape.losses` (``cross_entropy``, ``mse``, ``nll``), a :class:`Loss`, or a
    callable returning per-sample losses (shape ``(B,)``, summed here) or the batch mean (a scalar, multiplied by
    ``B`` here), so ``torch.nn.functional.mse_loss``-style means and ``reduction='none'`` losses both work.
    """
    fn = resolve_surface_loss(loss).fn

    def summed(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        v = fn(out, y)
        if v.dim() == 0:
            return v * out.shape[0]
        if v.shape != (out.shape[0],):
            raise LandscapeError(f"the loss callable returned shape {tuple(v.shape)}; expected a scalar (the batch "
                                 f"mean) or ({out.shape[0]},) (per sample)")
        return v.sum()

    return summed


class HessianOperator:
    """The Hessian of the mean loss over ``(x, y)`` as a linear operator on flat vectors.

    Example::

        op = HessianOperator(model, data.x, data.y)           # conv/linear weights only, cross-entropy
        hv = op.matvec(torch.randn(op.dim))                    # H @ v, flat, in the parameters' dtype
        per_tensor = op.unflatten(hv)                          # list shaped like op.params

    Args:
        model: any module; put in eval mode here (BatchNorm uses running statistics).
        x: inputs, (N, ...), moved once to the parameters' device and dtype if they are elsewhere.
        y: targets, (N, ...).
        loss: ``'cross_entropy'`` or a callable ``(out, y)`` returning per-sample losses or the batch mean.
        params: ``'weights'`` (``dim() > 1``, default, as the reference), ``'all'``, or a list of names.
        batch_size: samples per forward pass (default 512; None: all in one); only memory and speed depend on it.
        method: ``'double_backward'`` (autograd.grad with create_graph; works for any module) or
            ``'forward_over_reverse'`` (``torch.func.jvp`` of ``torch.func.grad``; needs forward-mode AD support).

    Raises:
        LandscapeError: empty or mismatched data, a bad batch size, no selected trainable tensor.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Union[str, LossFn] = "cross_entropy",
                 params: Union[str, Sequence[str]] = "weights", batch_size: int | None = 512,
                 method: str = "double_backward") -> None:
        if method not in METHODS:
            raise LandscapeError(f"unknown HVP method {method!r}; valid: {', '.join(METHODS)}")
        if x.shape[0] == 0 or x.shape[0] != y.shape[0]:
            raise LandscapeError(f"need N > 0 inputs and as many targets; got {x.shape[0]} inputs and "
                                 f"{y.shape[0]} targets")
        if batch_size is not None and batch_size <= 0:
            raise LandscapeError(f"batch size must be a positive integer; got {batch_size}")
        self.model = model.eval()
        self.names, self.params = select_parameters(model, params)
        self.shapes = [tuple(p.shape) for p in self.params]
        self.numels = [p.numel() for p in self.params]
        self.dim = sum(self.numels)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        # Inputs follow the parameters' device (a no-op when already there: data stay resident, never copied per
        # call) and dtype, so a float64 model (exactness checks) gets float64 inputs.
        self.x = x.to(self.device, self.dtype) if x.is_floating_point() else x.to(self.device)
        self.y = y.to(self.device)
        self.n = int(x.shape[0])
        self.batch_size = int(batch_size or self.n)
        self.method = method
        self._loss_sum = resolve_loss(loss)
        self.calls = 0  # HVPs computed, for cost reports

    # -- flat <-> per-tensor ------------------------------------------------------------------------------------
    def flatten(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-parameter tensors (in ``self.params`` order) -> one flat vector in the operator's dtype."""
        if len(tensors) != len(self.params):
            raise LandscapeError(f"expected {len(self.params)} tensors (one per selected parameter), "
                                 f"got {len(tensors)}")
        return torch.cat([t.reshape(-1).to(self.device, self.dtype) for t in tensors])

    def unflatten(self, v: torch.Tensor) -> list[torch.Tensor]:
        """A flat vector -> views shaped like ``self.params``."""
        self._check(v)
        return [c.view(s) for c, s in zip(torch.split(v, self.numels), self.shapes)]

    def full_direction(self, v: torch.Tensor, model: nn.Module | None = None) -> tuple[list[str], list[torch.Tensor]]:
        """A flat vector as a direction over *all* ``named_parameters()`` (zeros for the unselected ones).

        This is the layout of the landscape's direction groups (``dir_type='weights'``), so an eigenvector can be
        stored and read back as a plot direction.
        """
        parts = dict(zip(self.names, self.unflatten(v)))
        named = list((model or self.model).named_parameters())
        return ([n for n, _ in named],
                [parts[n].detach() if n in parts else torch.zeros_like(p, device=v.device) for n, p in named])

    def parameters_flat(self) -> torch.Tensor:
        """The current values of the selected parameters, flat (a copy)."""
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def _check(self, v: torch.Tensor) -> None:
        if v.dim() != 1 or v.numel() != self.dim:
            raise LandscapeError(f"expected a flat vector of {self.dim} entries, got shape {tuple(v.shape)}")

    def _batches(self):
        for i in range(0, self.n, self.batch_size):
            yield self.x[i:i + self.batch_size], self.y[i:i + self.batch_size]

    # -- values -------------------------------------------------------------------------------------------------
    def loss(self) -> float:
        """The mean loss at the current parameters."""
        with torch.no_grad():
            return float(sum(self._loss_sum(self.model(xb), yb) for xb, yb in self._batches())) / self.n

    def gradient(self) -> torch.Tensor:
        """The gradient of the mean loss with respect to the selected parameters, flat."""
        total = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for xb, yb in self._batches():
            with torch.enable_grad():
                g = torch.autograd.grad(self._loss_sum(self.model(xb), yb), self.params, allow_unused=True)
            total += torch.cat([(torch.zeros_like(p) if t is None else t).reshape(-1) for t, p in zip(g, self.params)])
        return total / self.n

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H @ v`` for a flat ``v`` (any dtype/device; computed and returned in the parameters' dtype)."""
        self._check(v)
        v = v.to(self.device, self.dtype)
        vs = self.unflatten(v)
        total = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        step = self._hvp_double_backward if self.method == "double_backward" else self._hvp_forward_over_reverse()
        for xb, yb in self._batches():
            total += torch.cat([t.reshape(-1) for t in step(xb, yb, vs)])
        self.calls += 1
        return total / self.n

    __matmul__ = matvec

    def _hvp_double_backward(self, xb: torch.Tensor, yb: torch.Tensor,
                             vs: list[torch.Tensor]) -> Sequence[torch.Tensor]:
        with torch.enable_grad():
            g = torch.autograd.grad(self._loss_sum(self.model(xb), yb), self.params, create_graph=True)
            gv = sum((gi * vi).sum() for gi, vi in zip(g, vs))
            # allow_unused: a parameter that enters the loss only linearly has a zero Hessian row.
            hv = torch.autograd.grad(gv, self.params, allow_unused=True)
        return [torch.zeros_like(p) if h is None else h.detach() for h, p in zip(hv, self.params)]

    def _hvp_forward_over_reverse(self):
        from torch.func import functional_call, grad, jvp

        names, primals = self.names, tuple(p.detach() for p in self.params)

        def step(xb: torch.Tensor, yb: torch.Tensor, vs: list[torch.Tensor]) -> Sequence[torch.Tensor]:
            def f(*ps):
                # Only the selected tensors are replaced; the others (and the buffers) stay the module's own.
                return self._loss_sum(functional_call(self.model, dict(zip(names, ps)), (xb,)), yb)

            return jvp(grad(f, argnums=tuple(range(len(primals)))), primals, tuple(vs))[1]

        return step

    def dense(self) -> torch.Tensor:
        """The full ``dim x dim`` Hessian, one HVP per column: for tests and tiny models only."""
        if self.dim > 20_000:
            raise LandscapeError(f"the dense Hessian of {self.dim} parameters would need {self.dim ** 2 * 8 / 1e9:.0f} "
                                 "GB; use the Lanczos functions instead")
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        return torch.stack([self.matvec(e) for e in eye], dim=1)
