"""One pass of the data through a model as it is now: the loss moments and correct count, and BN statistics
recomputed.

The sums stay on the device (float64) until the caller reads them, so a grid point costs one host
synchronisation for a whole block of points (or, with ``--tolerance``, one per chunk of data), not one per batch.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from landscape import batching
from landscape.data import Data
from landscape.evaluate.device import precision_context
from landscape.objectives import COLUMNS, CORRECT, SUM, WEIGHT, Objective, resolve_objective
from landscape.losses import LossSpec


def add_moments(model: nn.Module, data: Data, batch_size: int, precision: str, objective: Objective,
                sums: torch.Tensor, start: int = 0, stop: int | None = None) -> int:
    """Add each batch's row of sums (:data:`landscape.objectives.COLUMNS`: the loss sum, its square, the number
    correct, the weights, ...) over samples ``start..stop`` to ``sums`` (a float64 tensor on the device; no host
    synchronisation). Returns the number of batches."""
    batches = 0
    with precision_context(precision, data.device):
        for x, y in data.batches(batch_size, start, stop):
            sums += objective.moments(model, x, y, data.layout)
            batches += 1
    return batches


def loss_sums(model: nn.Module, data: Data, batch_size: int, precision: str, objective: Objective
              ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Summed loss (float64), number correct (or ``None``) and summed weight (the number of samples, or of
    tokens for a token loss), left on the device (no host synchronisation)."""
    sums = torch.zeros(len(COLUMNS), dtype=torch.float64, device=data.device)
    add_moments(model, data, batch_size, precision, objective, sums)
    return sums[SUM], (sums[CORRECT] if objective.accuracy else None), sums[WEIGHT]


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, data: Data, batch_size: int = 512, precision: str = "fp32",
                      loss: LossSpec | None = None, objective=None) -> tuple[float, float | None]:
    """Mean loss and accuracy (percent; ``None`` without class labels) of ``model`` as it is now, over ``data``
    (``loss``/``objective`` as :func:`landscape.compute` takes them).

    The sums are accumulated in float64 on the device and read back once.
    """
    obj = resolve_objective(loss, objective)
    obj.probe(model, data)
    total, correct, weight = loss_sums(model, data, batch_size, precision, obj)
    w = float(weight.item())
    return float(total.item()) / w, (100.0 * float(correct.item()) / w if correct is not None else None)


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
                batching.call_model(model, x)
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.eval()
