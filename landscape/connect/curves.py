"""Curves between two solutions A and B, as Garipov et al. 2018 parametrize them, with one trainable bend θ_b:

* ``bezier`` (the default): the quadratic Bézier curve ``θ(t) = (1-t)² A + 2t(1-t) θ_b + t² B``;
* ``polychain``: the polygonal chain A → θ_b → B, ``θ(t) = A + 2t (θ_b - A)`` for t ≤ 1/2, then
  ``θ_b + (2t - 1)(B - θ_b)``.

Both are ``a(t) A + b(t) θ_b + c(t) B`` with ``a + b + c = 1``, so every point of the curve lies in the plane through
A, B and the bend, at ``A + c(t) (B - A) + b(t) (θ_b - A)``: the plane of the three-model surface (``--ckpt2 B
--ckpt3 bend``), at coordinates ``(α, β) = (c(t), b(t))``. The straight line is ``(α, β) = (t, 0)``.
"""

from __future__ import annotations

import numpy as np

CURVES = ("bezier", "polychain")


def coefficients(kind: str, t: float) -> tuple[float, float, float]:
    """``(a, b, c)``: the weights of A, the bend and B at ``t`` in [0, 1]."""
    t = float(t)
    if kind == "bezier":
        return (1 - t) ** 2, 2 * t * (1 - t), t ** 2
    if kind == "polychain":
        return (1 - 2 * t, 2 * t, 0.0) if t <= 0.5 else (0.0, 2 - 2 * t, 2 * t - 1)
    raise ValueError(f"unknown curve {kind!r}; valid: {', '.join(CURVES)}")


def plane_coords(kind: str, ts) -> np.ndarray:
    """The points of the curve at ``ts`` in the plane through A, B and the bend: rows ``(α, β)`` with
    ``θ = A + α (B - A) + β (θ_b - A)``."""
    return np.array([(c, b) for a, b, c in (coefficients(kind, t) for t in ts)], dtype=np.float64)


def line_coords(ts) -> np.ndarray:
    """The straight line A → B in the same plane: ``(t, 0)``."""
    ts = np.asarray(ts, dtype=np.float64)
    return np.stack([ts, np.zeros_like(ts)], 1)


def barrier(losses) -> float:
    """A path's loss barrier: its highest loss minus the mean of its two ends (Garipov et al.; 0 or less: no
    barrier)."""
    v = np.asarray(losses, dtype=np.float64)
    return float(np.max(v) - (v[0] + v[-1]) / 2)
