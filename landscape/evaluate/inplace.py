"""The lean perturbation for large models: the caller's own module is moved to theta* + a*dx + b*dy in place and
put back exactly, with one copy of theta* (of the tensors that move) and no copy of the model.

Memory beyond the model: the copy of the moving tensors (1x their bytes) and one chunk of a direction at a time
(:func:`landscape.seeded.chunk_for`; regenerable directions are never whole in memory). Each point
costs, per moving tensor, a regeneration of its two directions' chunks and one fused add, in float32, rounded
once into the tensor's dtype: a bf16 or fp16 model takes steps far below its own rounding without losing them.

The module is left exactly as it came in by :meth:`InPlacePerturbation.release` (weights and buffers bitwise,
training flags, device), which :class:`landscape.runner.SplitEvaluation` calls on every exit: an error, Ctrl-C,
a stop signal.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from landscape.directions import Directions, perturbed_tensors
from landscape.errors import LandscapeError
from landscape.seeded import COMPILE_ELEMENTS, SeededDirections, TensorPlan, chunk_for, row_chunks
from landscape.sharded import is_sharded, local_rows


class InPlacePerturbation:
    """theta* + a*dx + b*dy written into the caller's module (see the module docstring).

    Args:
        model: the caller's network, moved in place (and back).
        directions: regenerable (:class:`~landscape.seeded.SeededDirections`) or tensors (a
            :class:`~landscape.directions.Directions`; then held on the device, float32).
        device: the evaluation device (the module is moved there, and back to where it was on release).
        chunk: elements of a direction made at once (default :func:`~landscape.seeded.chunk_for`).
        compiled: regenerate with the fused generator (default: for
            :data:`~landscape.seeded.COMPILE_ELEMENTS` moving elements or more; the same values).

    Attributes:
        module: the caller's module, in eval mode, on ``device``.
        moved: ``(index, live rows, theta*, first row)`` for every tensor the directions move: the whole tensor, or
            on a model sharded with FSDP2 this rank's rows and the global index of the first (each rank
            generates just its rows of the directions, :mod:`landscape.sharded`).
    """

    batched = False  # no vmap: it would hold K copies of the moving tensors

    def __init__(self, model: nn.Module, directions: SeededDirections | Directions, device: torch.device,
                 chunk: int | None = None, compiled: bool | None = None):
        directions.check(model)
        self.sharded = is_sharded(model)
        devices = {t.device for t in model.state_dict().values()}
        if len(devices) > 1:
            raise LandscapeError(f"the model is spread over {len(devices)} devices; the lean path moves it whole to "
                                 f"{device}: put it on one device first")
        self.home = devices.pop() if devices else torch.device("cpu")
        self.device, self.directions = torch.device(device), directions
        self.module = model
        self._modes = [(m, m.training) for m in model.modules()]
        if not self.sharded:  # a sharded model stays where FSDP put it
            model.to(self.device)
        model.eval()
        names, tensors = perturbed_tensors(model, directions.dir_type)
        self.moved = []  # (index, this rank's rows of the live tensor, their theta*, the first row's global index)
        self._dense: dict[int, list] = {}
        with torch.no_grad():
            for i, t in enumerate(tensors):
                if not t.is_floating_point() or not self._moves(i):
                    continue
                local, offset = local_rows(t)
                self.moved.append((i, local, local.detach().clone(), offset))
        elements = sum(w.numel() for _, _, w, _ in self.moved)
        self.compiled = elements >= COMPILE_ELEMENTS if compiled is None else compiled
        self.chunk = chunk or chunk_for(elements)
        # BN recompute overwrites the running statistics: keep the (small) floating buffers to put them back
        self._buffers0 = {n: b.detach().clone() for n, b in model.named_buffers() if b.is_floating_point()}

    def _moves(self, i: int) -> bool:
        d = self.directions
        if isinstance(d, SeededDirections):
            return d.moves(i)
        nonzero = bool(d.x[i].count_nonzero()) or (d.y is not None and bool(d.y[i].count_nonzero()))
        if nonzero:  # tensors: held on the device once, float32 (the arithmetic's type)
            self._dense[i] = [d.x[i].to(self.device, torch.float32),
                              d.y[i].to(self.device, torch.float32) if d.y is not None else None]
        return nonzero

    def _direction(self, i: int, axis: int, r0: int, r1: int, theta: torch.Tensor, offset: int
                   ) -> torch.Tensor | None:
        """Rows ``r0 .. r1`` of this rank's part (global rows ``offset + r0 ..``) of tensor ``i``'s direction."""
        if i in self._dense:
            d = self._dense[i][axis]
            return d[offset + r0:offset + r1] if d is not None else None
        return self.directions.chunk(i, axis, offset + r0, offset + r1, self.device, theta[r0:r1], self.compiled)

    @torch.no_grad()
    def set_point(self, a: float, b: float = 0.0) -> None:
        """Write theta* + (a*dx + b*dy) into the module, chunk by chunk, in float32, rounded once."""
        two_d = self.directions.y is not None and b != 0.0
        for i, t, w, offset in self.moved:
            plan = TensorPlan("", tuple(w.shape), 1)  # this rank's rows
            for r0, r1 in row_chunks(plan, self.chunk):
                step = self._direction(i, 0, r0, r1, w, offset) * a
                if two_d:
                    step.add_(self._direction(i, 1, r0, r1, w, offset), alpha=b)
                rows = t.data[r0:r1] if t.dim() else t.data
                torch.add(w[r0:r1] if w.dim() else w, step, out=step)
                rows.copy_(step)

    @torch.no_grad()
    def restore(self) -> None:
        """theta* (weights and floating buffers) back into the module, bitwise."""
        for _, t, w, _ in self.moved:
            t.data.copy_(w)
        for n, b in self.module.named_buffers():
            if n in self._buffers0:
                b.copy_(self._buffers0[n])

    def stacked(self, coords):
        raise LandscapeError("the lean path evaluates one point at a time (stacking K points would hold K copies "
                             "of the moving weights); drop --points-per-step")

    def release(self) -> None:
        """The module exactly as it came in: theta*, its training flags, its device."""
        self.restore()
        if not self.sharded:
            self.module.to(self.home)
        for m, mode in self._modes:
            m.training = mode
        self.moved, self._dense = [], {}


__all__ = ["InPlacePerturbation"]
