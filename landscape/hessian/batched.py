"""Several grid points' eigen problems at once: Hessian-vector products of K parameter points in one batched call
(``torch.func``: ``jvp`` of ``grad``, ``vmap`` over the stacked parameters, as the surface's vmap engine stacks
them), and K Lanczos runs advanced in lockstep on those products.

Each run follows exactly the steps it would take alone (:func:`landscape.hessian.lanczos.lanczos_steps`); only the
products are computed together, so the eigenvalues equal the one-point path's to float rounding. A run that has
converged drops out of the batch. Whether this is faster than K sequential runs depends on the device: on a GPU
the K products fill the device the way K surface points do; on a CPU they do not (measure with
``bench/hessian.py --batched``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from landscape.errors import LandscapeError
from landscape.hessian.hvp import HessianOperator
from landscape.hessian.lanczos import DEFAULT_TOL, Eigenpairs, extreme_eigenpairs_steps


class StackedHessians:
    """The Hessians of the mean loss over ``(x, y)`` at K points of parameter space, as one batched operator.

    Args:
        model: the module (eval mode: BN running statistics); its tensors not given per point are shared.
        x, y: the data, resident on the model's device.
        loss: as :class:`~landscape.hessian.hvp.HessianOperator`.
        params: which parameters the Hessian is over (``weights``: ``dim() > 1``, the default).
        batch_size: samples per forward pass (per point: K points use K times the activation memory).
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss="cross_entropy",
                 params="weights", batch_size: int | None = 512):
        self.op = HessianOperator(model, x, y, loss=loss, params=params, batch_size=batch_size,
                                  method="forward_over_reverse")
        self.model, self.dim = model, self.op.dim
        self.dtype, self.device = self.op.dtype, self.op.device
        self.points: dict[str, torch.Tensor] = {}
        self.k = 0
        self.calls = 0  # batched products computed (each is up to K HVPs)

    def set_points(self, stacked: dict[str, torch.Tensor]) -> None:
        """The K points: ``{name: (K, *shape)}`` for every parameter or buffer that differs between them (e.g.
        :meth:`landscape.evaluate.perturb.Perturbation.stacked`); the selected parameters missing from it are
        the module's own at every point."""
        ks = {int(t.shape[0]) for t in stacked.values()}
        if len(ks) != 1:
            raise LandscapeError(f"stacked points must share their leading size; got sizes {sorted(ks)}")
        self.k = ks.pop()
        live = dict(self.model.named_parameters())
        self.points = dict(stacked)
        for n in self.op.names:  # the differentiated tensors must be per point (jvp's primals)
            if n not in self.points:
                self.points[n] = live[n].detach().unsqueeze(0).expand(self.k, *live[n].shape)

    def matvec(self, V: torch.Tensor, which: Sequence[int] | None = None) -> torch.Tensor:
        """``H_k @ V[i]`` for the points ``which[i]`` (default: all K, in order); ``V`` is (len(which), dim)."""
        from torch.func import functional_call, grad, jvp, vmap

        which = list(range(self.k)) if which is None else list(which)
        if V.dim() != 2 or V.shape != (len(which), self.dim):
            raise LandscapeError(f"expected ({len(which)}, {self.dim}) vectors, got {tuple(V.shape)}")
        idx = torch.tensor(which, device=self.device)
        pts = {n: t.index_select(0, idx) for n, t in self.points.items()}
        sel = tuple(pts.pop(n) for n in self.op.names)
        V = V.to(self.device, self.dtype)
        vs = tuple(c.reshape(len(which), *s) for c, s in zip(torch.split(V, self.op.numels, dim=1), self.op.shapes))
        names, loss_sum, model = self.op.names, self.op._loss_sum, self.model

        def one(primals, tangents, rest, xb, yb):
            def f(*ps):
                return loss_sum(functional_call(model, {**rest, **dict(zip(names, ps))}, (xb,)), yb)

            return jvp(grad(f, argnums=tuple(range(len(primals)))), primals, tangents)[1]

        batched = vmap(one, in_dims=(0, 0, 0, None, None))
        total = torch.zeros((len(which), self.dim), dtype=self.dtype, device=self.device)
        for xb, yb in self.op._batches():
            hv = batched(sel, vs, pts, xb, yb)
            # detached: the module's shared tensors (biases, BN) still require grad outside the transforms
            total += torch.cat([h.detach().reshape(len(which), -1) for h in hv], dim=1)
        self.calls += 1
        return total / self.op.n


def extreme_eigenpairs_batched(op: StackedHessians, top: int = 1, bottom: int = 0, *, tol: float = DEFAULT_TOL,
                               max_iter: int | None = None, seed: int = 0
                               ) -> list[tuple[Eigenpairs, Eigenpairs | None]]:
    """:func:`~landscape.hessian.lanczos.extreme_eigenpairs` at each of ``op``'s K points, the runs advanced
    together: one batched product per step for the runs still going.

    Returns:
        One ``(largest, smallest)`` per point, in order.
    """
    runs = [extreme_eigenpairs_steps(op.dim, op.dtype, op.device, top, bottom, tol=tol, max_iter=max_iter,
                                     seed=seed) for _ in range(op.k)]
    results: list = [None] * op.k
    pending = {}
    for i, r in enumerate(runs):
        pending[i] = next(r)  # validation errors surface here, before any product
    while pending:
        which = sorted(pending)
        W = op.matvec(torch.stack([pending[i] for i in which]), which)
        for row, i in enumerate(which):
            try:
                pending[i] = runs[i].send(W[row])
            except StopIteration as done:
                results[i] = done.value
                del pending[i]
    return results
