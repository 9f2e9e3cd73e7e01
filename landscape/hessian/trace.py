"""The Hessian's trace by Hutchinson's estimator with Rademacher probes, and its standard error.

``tr(H) = E[z^T H z]`` for ``z`` with independent +-1 entries; the estimate is the mean of ``M`` such products and
its standard error the sample standard deviation over ``sqrt(M)``. Rademacher probes have the least variance of
the usual choices (``2 * sum_{i != j} H_ij^2``, with no diagonal term).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from landscape.errors import LandscapeError
from landscape.hessian.lanczos import _operator_meta


@dataclass
class TraceEstimate:
    """``trace`` (the mean of ``samples``), ``se`` (its standard error; NaN for one sample) and the per-probe
    values ``z^T H z`` (float64)."""

    trace: float
    se: float
    samples: torch.Tensor

    def __str__(self) -> str:
        return f"{self.trace:.6g} +- {self.se:.2g} ({self.samples.numel()} probes)"


def rademacher(dim: int, generator: torch.Generator) -> torch.Tensor:
    """A vector of +-1 in float64 on the CPU, drawn from ``generator`` (so probes do not depend on the device)."""
    return torch.randint(0, 2, (dim,), generator=generator, dtype=torch.int8).to(torch.float64).mul_(2).sub_(1)


def hutchinson_trace(op, samples: int = 100, *, seed: int = 0) -> TraceEstimate:
    """Estimate ``tr(H)`` with ``samples`` Rademacher probes (one HVP each), deterministic given ``seed``.

    Raises:
        LandscapeError: ``samples < 1``.
    """
    matvec, dim, dtype, device = _operator_meta(op)
    if samples < 1:
        raise LandscapeError(f"the trace needs at least one probe; got samples={samples}")
    g = torch.Generator().manual_seed(int(seed))
    vals = []
    for _ in range(int(samples)):
        z = rademacher(dim, g).to(device, dtype)
        # The product in float64: a sum of ~dim terms of mixed sign, where fp32 would lose digits.
        vals.append(float(z.double() @ matvec(z).double()))
    s = torch.tensor(vals, dtype=torch.float64)
    se = float(s.std(unbiased=True) / math.sqrt(s.numel())) if s.numel() > 1 else float("nan")
    return TraceEstimate(float(s.mean()), se, s)
