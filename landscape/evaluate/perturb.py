"""The perturbation theta* + a*dx + b*dy, applied to a private copy of the caller's model.

The caller's model object is never touched: the evaluator works on a deep copy moved to the evaluation device
and laid out for the engine (channels_last for images), so a notebook's model keeps its device, memory format,
training mode and weights whatever happens during a surface.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from landscape.directions import Directions, perturbed_tensors
from landscape.errors import LandscapeError

HALF = (torch.float16, torch.bfloat16)


class Perturbation:
    """theta* and the directions on the device, and the copy of the model they move.

    Args:
        model: the caller's network (copied, never modified).
        directions: the plane; their tensors are checked against the model.
        device: the evaluation device.
        memory_format: ``torch.channels_last`` (cuDNN's and oneDNN's fast path for convolutions) or
            ``torch.contiguous_format`` (what ``vmap`` fully supports on cuDNN's batch norm).

    Attributes:
        module: the private copy, in eval mode, on ``device``, in ``memory_format``.
        moved: ``(name, live tensor, theta*, dx, dy)`` for every tensor some direction actually moves.
    """

    def __init__(self, model: nn.Module, directions: Directions, device: torch.device,
                 memory_format: torch.memory_format = torch.channels_last):
        directions.check(model)
        try:
            module = copy.deepcopy(model)
        except Exception as e:  # noqa: BLE001 - deepcopy fails in many ways on exotic modules
            raise LandscapeError(f"cannot copy the model ({type(e).__name__}: {str(e)[:120]}); the evaluator "
                                 "works on a copy so that your model is left as it is") from e
        self.module = module.to(device).eval().to(memory_format=memory_format)
        self.device, self.memory_format = device, memory_format
        names, tensors = perturbed_tensors(self.module, directions.dir_type)
        ys = directions.y if directions.y is not None else [None] * len(tensors)
        self.moved = []
        with torch.no_grad():
            for name, t, dx, dy in zip(names, tensors, directions.x, ys):
                if not t.is_floating_point():
                    continue
                if not (bool(dx.count_nonzero()) or (dy is not None and bool(dy.count_nonzero()))):
                    continue

                def put(d, t=t):
                    # the direction in the live tensor's dtype and layout, so set_point writes like for like; for a
                    # half-precision tensor in float32, so that a step below its rounding is not lost
                    dtype = torch.float32 if t.dtype in HALF else t.dtype
                    return (d.to(device, dtype) if d is not None else torch.zeros_like(t, dtype=dtype)).contiguous(
                        memory_format=_format_of(t))

                self.moved.append((name, t, t.detach().clone(), put(dx), put(dy)))
        # BN recompute overwrites the running statistics; keep theta*'s so restore() is exact.
        self._state0 = {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    @torch.no_grad()
    def set_point(self, a: float, b: float = 0.0) -> None:
        """Move the copy to theta* + (a*dx + b*dy), computed on the device in the reference's order."""
        for _, t, w, dx, dy in self.moved:
            step = dx * a
            step.add_(dy, alpha=b)
            if t.dtype in HALF:  # theta* + step in float32, rounded once into the tensor's dtype
                t.data.copy_(torch.add(w, step))
            else:
                torch.add(w, step, out=t.data)

    @torch.no_grad()
    def restore(self) -> None:
        """Put theta* (weights and BN buffers) back into the copy."""
        for k, v in self.module.state_dict().items():
            v.copy_(self._state0[k])

    def release(self) -> None:
        """Nothing to give back: the caller's model was never touched (the copy goes with this object)."""

    @torch.no_grad()
    def stacked(self, coords: list[tuple[float, float]]) -> dict[str, torch.Tensor]:
        """theta* + a_k*dx + b_k*dy for K points, stacked along a new leading dimension (the batched engine)."""
        k = len(coords)
        a = torch.tensor([c[0] for c in coords], device=self.device, dtype=torch.float32)
        b = torch.tensor([c[1] for c in coords], device=self.device, dtype=torch.float32)
        out = {}
        for name, _, w, dx, dy in self.moved:
            shape = (k,) + (1,) * w.dim()
            step = dx.unsqueeze(0) * a.view(shape).to(dx.dtype)
            step += dy.unsqueeze(0) * b.view(shape).to(dx.dtype)
            out[name] = (w.unsqueeze(0) + step).to(w.dtype)
        return out


def _format_of(t: torch.Tensor) -> torch.memory_format:
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
