"""Curvature over a grid (``--eigen``): the Hessian's extreme eigenvalues at every point of a surface.

Li et al. (Fig. 8) map |lambda_min / lambda_max| over the plane to show where the landscape is convex: near zero
(lambda_min ~ 0 or positive) the surface is locally convex along every direction, near one it curves down about
as strongly as it curves up. Ours is the Hessian of the *mean* loss over the data (eval-mode BN, the reference's
parameters: ``dim() > 1``); the reference sums per-batch Hessian-vector products, which scales its eigenvalues by
the number of batches but leaves the ratio unchanged.

Each point's eigenvalues come from one Lanczos run with a fixed seed on the evaluator's own copy of the model,
moved to that point, so the values are the same whichever rank or resume computes them.
"""

from __future__ import annotations

from typing import Sequence

from landscape.errors import LandscapeError
from landscape.evaluate import PlaneEvaluator
from landscape.hessian.hvp import HessianOperator
from landscape.hessian.lanczos import extreme_eigenpairs

EIGEN_KEYS = ("max_eig", "min_eig")  # the reference's dataset names, so its plotting scripts read them


class CurvatureMap:
    """Loss, accuracy and (lambda_max, lambda_min) at grid points: :meth:`evaluate` is what a surface calls.

    Args:
        evaluator: the surface's evaluator (its model copy, data and loss are reused).
        seed: the Lanczos start vector's seed (the same at every point).
        max_iter: Lanczos steps at most per point.
        points: grid points whose eigen problems run together (:mod:`landscape.hessian.batched`: one batched
            Hessian-vector product per Lanczos step); 1 runs them one after another on the model copy.
    """

    def __init__(self, evaluator: PlaneEvaluator, seed: int = 0, max_iter: int | None = None, points: int = 1):
        if points < 1:
            raise LandscapeError(f"eigen points per step must be a positive integer; got {points}")
        if evaluator.data.streamed:
            raise LandscapeError("--eigen needs the data resident on the device (it is streamed here); pass fewer "
                                 "--samples")
        if evaluator.bn_mode != "eval":
            raise LandscapeError("--eigen computes the Hessian with BN running statistics (eval mode, as the "
                                 "reference); drop --bn recompute")
        self.ev, self.seed, self.max_iter, self.points = evaluator, seed, max_iter, points
        data = evaluator.data
        loss = evaluator.objective.plain_loss(data, "--eigen")
        self.op = HessianOperator(evaluator.model, data.x, data.y, loss=loss.fn, params="weights",
                                  batch_size=evaluator.batch_size)
        self.stacked = None
        if points > 1:
            from landscape.hessian.batched import StackedHessians

            self.stacked = StackedHessians(evaluator.model, data.x, data.y, loss=loss.fn,
                                           params="weights", batch_size=evaluator.batch_size)

    def evaluate(self, coords: Sequence[tuple[float, float]]):
        """``(losses, accuracies, {"max_eig": [...], "min_eig": [...]})`` at ``coords``."""
        losses, accs = self.ev.evaluate(coords)
        return losses, accs, self.eigenvalues(coords)

    def eigenvalues(self, coords: Sequence[tuple[float, float]]) -> dict[str, list[float]]:
        """``{"max_eig": [...], "min_eig": [...]}`` at ``coords``."""
        if self.stacked is not None:
            hi_all, lo_all = self._batched(coords)
            return {"max_eig": hi_all, "min_eig": lo_all}
        hi_all, lo_all = [], []
        try:
            for a, b in coords:
                self.ev.pert.set_point(float(a), float(b))
                hi, lo = extreme_eigenpairs(self.op, top=1, bottom=1, seed=self.seed, max_iter=self.max_iter)
                hi_all.append(float(hi.eigenvalues[0]))
                lo_all.append(float(lo.eigenvalues[0]))
        finally:
            self.ev.pert.restore()
        return {"max_eig": hi_all, "min_eig": lo_all}

    def _batched(self, coords) -> tuple[list[float], list[float]]:
        from landscape.hessian.batched import extreme_eigenpairs_batched

        hi_all, lo_all = [], []
        coords = [(float(a), float(b)) for a, b in coords]
        for i in range(0, len(coords), self.points):
            self.stacked.set_points(self.ev.pert.stacked(coords[i:i + self.points]))
            for hi, lo in extreme_eigenpairs_batched(self.stacked, top=1, bottom=1, seed=self.seed,
                                                     max_iter=self.max_iter):
                hi_all.append(float(hi.eigenvalues[0]))
                lo_all.append(float(lo.eigenvalues[0]))
        return hi_all, lo_all
