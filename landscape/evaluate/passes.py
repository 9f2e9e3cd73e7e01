"""One pass of the data through a model as it is now: the loss moments and correct count, and BN statistics
recomputed.

The sums stay on the device (float64) until the caller reads them, so a grid point costs one host
synchronisation for a whole block of points (or, with ``--tolerance``, one per chunk of data), not one per batch.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from landscape.data import Data
from landscape.evaluate.device import precision_context
from landscape.losses import Loss, LossSpec, is_class_labels, resolve_loss

# The columns of a point's sums: what landscape.sampling needs for the mean and its standard error.
SUM, SUMSQ, CORRECT = 0, 1, 2


def add_moments(model: nn.Module, data: Data, batch_size: int, precision: str, loss: Loss, sums: torch.Tensor,
                accuracy: bool = True, start: int = 0, stop: int | None = None) -> int:
    """Add the loss sum, its sum of squares and the number correct over samples ``start..stop`` to ``sums``
    (a float64 tensor of 3 on the device; no host synchronisation). Returns the number of batches."""
    batches = 0
    with precision_context(precision, data.device):
        for x, y in data.batches(batch_size, start, stop):
            out = model(x).float()
            s, q = loss.batch_moments(out, y)
            sums[SUM] += s
            sums[SUMSQ] += q
            if accuracy:
                sums[CORRECT] += (out.argmax(1) == y).sum()
            batches += 1
    return batches


def loss_sums(model: nn.Module, data: Data, batch_size: int, precision: str, loss: Loss,
              accuracy: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Summed loss (float64) and number correct (or ``None``), left on the device (no host synchronisation)."""
    sums = torch.zeros(3, dtype=torch.float64, device=data.device)
    add_moments(model, data, batch_size, precision, loss, sums, accuracy)
    return sums[SUM], (sums[CORRECT] if accuracy else None)


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, data: Data, batch_size: int = 512, precision: str = "fp32",
                      loss: LossSpec | None = None) -> tuple[float, float | None]:
    """Mean loss and accuracy (percent; ``None`` for non-class targets) of ``model`` as it is now, over ``data``.

    The sum of per-sample losses is accumulated in float64 on the device and read back once.
    """
    acc = is_class_labels(data.y)
    total, correct = loss_sums(model, data, batch_size, precision, resolve_loss(loss), acc)
    n = len(data)
    return float(total.item()) / n, (100.0 * float(correct.item()) / n if correct is not None else None)


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
        with precision_context(precision, data.device):
            for x, _ in data.batches(batch_size):
                model(x)
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.eval()
