"""Evaluation of loss and accuracy at grid points theta* + alpha*delta + beta*eta.

Everything stays on the evaluation device: theta*, delta and eta are copied there once, each point's weights
are built there (never on the CPU and copied over), and the data was put there once by ``landscape.data``.
No DataLoader: batches are slices of a resident tensor.

The engine here sets one point's weights into the model and runs the data through it. On the CPU a plain loop
over points measured faster than ``vmap`` over stacked parameter sets, so it is the CPU engine.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from landscape.data import Data
from landscape.directions import perturbed_tensors
from landscape.errors import LandscapeError

PRECISIONS = ("fp32", "tf32", "bf16")
BN_MODES = ("eval", "recompute")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu. ``cuda`` without a GPU is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LandscapeError("--device cuda was requested but no CUDA GPU is visible to torch; use --device cpu "
                             "or --device auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise LandscapeError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N")
    return torch.device(device)


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """fp32: strict float32 (TF32 off). tf32: TF32 matmuls/convs on CUDA. bf16: autocast to bfloat16."""
    if precision not in PRECISIONS:
        raise LandscapeError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        if precision == "bf16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def default_batch_size(device: torch.device) -> int:
    """Large on a GPU (memory-bound small convs want big batches); 512 measured best on 2 CPU cores."""
    return 1024 if device.type == "cuda" else 512


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, data: Data, batch_size: int = 512, precision: str = "fp32"
                      ) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (percent) of ``model`` as it is now, over all of ``data``.

    The sum of per-sample losses is accumulated in float64 on the device and read back once, so a point costs
    one host synchronisation, not one per batch.
    """
    device = data.x.device
    total = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with precision_context(precision, device):
        for i in range(0, len(data), batch_size):
            x, y = data.x[i:i + batch_size], data.y[i:i + batch_size]
            logits = model(x).float()
            total += F.cross_entropy(logits, y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
    n = len(data)
    return float(total.item()) / n, 100.0 * float(correct.item()) / n


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, data: Data, batch_size: int = 512, precision: str = "fp32") -> None:
    """Replace every BN layer's running mean/var by statistics of ``data`` under the current weights.

    One pass in training mode with cumulative averaging (``momentum=None``), as ``torch.optim.swa_utils.update_bn``
    and the mode-connectivity literature do: the running values are the average of the per-batch statistics
    (exactly the data's statistics when one batch holds all the data), then the model returns to eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        with precision_context(precision, data.x.device):
            for i in range(0, len(data), batch_size):
                model(data.x[i:i + batch_size])
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.eval()


class PlaneEvaluator:
    """Evaluates L(theta* + a*dx + b*dy) at any (a, b), the model's own tensors moved in place.

    Args:
        model: the trained network (moved to ``data``'s device; its state is restored by :meth:`restore`).
        data: evaluation data, already on the device.
        xdir, ydir: directions (lists of tensors in ``dir_type`` order); ``ydir`` may be ``None`` (1D).
        dir_type: ``weights`` or ``states``.
        batch_size, precision, bn_mode: see the CLI's ``--batch-size``, ``--precision``, ``--bn``.
    """

    def __init__(self, model: nn.Module, data: Data, xdir: Sequence[torch.Tensor],
                 ydir: Sequence[torch.Tensor] | None = None, dir_type: str = "weights", batch_size: int | None = None,
                 precision: str = "fp32", bn_mode: str = "eval"):
        if bn_mode not in BN_MODES:
            raise LandscapeError(f"unknown BN mode {bn_mode!r}; valid: {', '.join(BN_MODES)}")
        if precision not in PRECISIONS:
            raise LandscapeError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
        self.device = data.x.device
        self.model = model.to(self.device).eval()
        self.data, self.precision, self.bn_mode = data, precision, bn_mode
        self.batch_size = batch_size or default_batch_size(self.device)
        _, tensors = perturbed_tensors(self.model, dir_type)
        if len(xdir) != len(tensors) or (ydir is not None and len(ydir) != len(tensors)):
            raise LandscapeError(f"direction has {len(xdir)} tensors but the model has {len(tensors)} ({dir_type})")
        zeros = [None] * len(tensors)
        self._moved = []  # (live tensor, theta*, dx, dy): only tensors some direction actually moves
        for t, dx, dy in zip(tensors, xdir, ydir if ydir is not None else zeros):
            if not t.is_floating_point():
                continue
            nz = bool(dx.count_nonzero()) or (dy is not None and bool(dy.count_nonzero()))
            if nz:
                dev = lambda d: (d.to(self.device, t.dtype) if d is not None else torch.zeros_like(t))  # noqa: E731
                self._moved.append((t, t.detach().clone(), dev(dx), dev(dy)))
        # BN recompute overwrites the running statistics; keep theta*'s so restore() is exact.
        self._state0 = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    @torch.no_grad()
    def set_point(self, a: float, b: float = 0.0) -> None:
        """Move the model to theta* + (a*dx + b*dy), computed on the device in the reference's order."""
        for t, w, dx, dy in self._moved:
            step = dx * a
            step.add_(dy, alpha=b)
            torch.add(w, step, out=t.data)

    @torch.no_grad()
    def restore(self) -> None:
        """Put theta* (weights and BN buffers) back into the model."""
        for k, v in self.model.state_dict().items():
            v.copy_(self._state0[k])

    def evaluate(self, coords: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
        """Loss and accuracy at each (a, b); a diverged point returns its inf/NaN loss as it is."""
        losses, accs = [], []
        try:
            for a, b in coords:
                self.set_point(float(a), float(b))
                if self.bn_mode == "recompute":
                    recompute_bn_statistics(self.model, self.data, self.batch_size, self.precision)
                loss, acc = loss_and_accuracy(self.model, self.data, self.batch_size, self.precision)
                losses.append(loss)
                accs.append(acc)
        finally:
            # The model leaves every call as it came in (theta*), whatever happened, so a caller holding the
            # same model object (a notebook, the next surface) never sees perturbed weights.
            self.restore()
        return losses, accs
