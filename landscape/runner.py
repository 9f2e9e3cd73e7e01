"""The grid of one surface: every split's evaluator (and the curvature map) at each block of points, written to
the file block by block, shared among the ranks of a torchrun job.
"""

from __future__ import annotations

import os

import numpy as np

from landscape import signals
from landscape.data import Data
from landscape.directions import Directions
from landscape.evaluate import PlaneEvaluator
from landscape.evaluate.inplace import InPlacePerturbation
from landscape.objectives import Objective
from landscape.sampling import figure_cap
from landscape.seeded import SeededDirections
from landscape.settings import Config, split_names
from landscape.surface import SurfaceWriter, attr_value, compute_surface, stat_keys
from landscape.surface.h5io import open_h5


class SplitEvaluation:
    """The evaluators of a surface's splits (train, test: each moves its own model copy to the same weights) and,
    with ``--eigen``, the curvature map.

    Attributes:
        evaluators: one per split, the main split's first.
        extras: the names of the per-point values stored beside the main split's loss and accuracy.
    """

    def __init__(self, net, datas: list[Data], dirs: Directions | SeededDirections, cfg: Config,
                 objective: Objective, lean: bool = False, ranks: int = 1):
        self.splits = split_names(cfg.split)
        # the lean path: one in-place perturbation of the caller's model, shared by every split's evaluator
        self.shared = InPlacePerturbation(net, dirs, datas[0].device) if lean else None
        try:
            self.evaluators = [PlaneEvaluator(net, d, dirs, batch_size=cfg.batch_size, precision=cfg.precision,
                                              bn_mode=cfg.bn, points_per_step=cfg.points_per_step,
                                              fold_bn=cfg.fold_bn, compile_model=cfg.compile, objective=objective,
                                              tolerance=cfg.tolerance, rtol=cfg.rtol, min_samples=cfg.min_samples,
                                              sample_seed=cfg.seed, perturbation=self.shared, ranks=ranks)
                               for d in datas]
        except BaseException:
            self.close()
            raise
        main = self.evaluators[0]
        self.curvature = None
        # every split's loss (the main one's is the writer's own), accuracy and precision
        self.extras = list(stat_keys(self.splits[0], main.has_accuracy))
        for sp in self.splits[1:]:
            self.extras += [f"{sp}_loss"] + ([f"{sp}_acc"] if main.has_accuracy else [])
            self.extras += stat_keys(sp, main.has_accuracy)
        if cfg.eigen:
            from landscape.hessian.maps import EIGEN_KEYS, CurvatureMap

            self.curvature = CurvatureMap(main, seed=cfg.seed, points=cfg.eigen_points or 1)
            self.extras += EIGEN_KEYS

    def close(self) -> None:
        """Give the caller's model back exactly as it came in (the lean path; a no-op otherwise)."""
        if self.shared is not None:
            self.shared.release()
            self.shared = None

    @property
    def main(self) -> PlaneEvaluator:
        return self.evaluators[0]

    def set_cap(self, cap: float) -> None:
        """Adaptive sampling: points above ``cap`` only need to be known as off the scale."""
        for ev in self.evaluators:
            ev.sampling.cap = cap

    def __call__(self, coords):
        """``(losses, accuracies, {name: values})`` at ``coords``: every split, with the same weights."""
        losses, accs, stats = self.main.evaluate_points(coords)
        more = {f"{self.splits[0]}_{k}": v for k, v in stats.items()}
        for sp, ev in zip(self.splits[1:], self.evaluators[1:]):
            l2, a2, st2 = ev.evaluate_points(coords)
            more[f"{sp}_loss"] = l2
            if a2 is not None:
                more[f"{sp}_acc"] = a2
            more.update({f"{sp}_{k}": v for k, v in st2.items()})
        if self.curvature is not None:
            more.update(self.curvature.eigenvalues(coords))
        return losses, accs, more


def loss_cap(path: str, evaluator: PlaneEvaluator) -> float:
    """Above this loss a point only needs to be known as off the scale: the figures' default cap for a surface
    whose minimum is the loss at theta* (on all the data). A resumed surface keeps the cap it was begun with.
    The renderer never draws a recorded cap's surface above it (:func:`landscape.render.scale.make_scale`), so a
    point stopped early above it stays off the scale even where the surface dips below theta*'s loss."""
    if os.path.exists(path):
        with open_h5(path, "r", probe=False) as f:  # checked by check_resume just before
            if "loss_cap" in f.attrs:
                return float(attr_value(f.attrs["loss_cap"]))
    return float(f"{figure_cap(evaluator.centre_loss()):.6g}")  # 6 digits: the settings line shows it


def fill_surface(path: str, grid: tuple[np.ndarray, np.ndarray | None], attrs: dict, dirs: Directions,
                 evaluation: SplitEvaluation, ctx, progress: bool, sharded: bool = False) -> tuple[int, float]:
    """Open (or resume) the file and compute its missing points; returns ``(points computed, seconds)``.

    Rank 0 alone opens (and locks) the file and writes; every rank cuts the pending points into the same blocks,
    which the ranks share out, or, for a model sharded over them (``sharded``), all evaluate together.
    The file and its lock are released on every exit (a notebook that hit an error can simply call again).
    """
    main = evaluation.main

    def open_writer() -> SurfaceWriter:
        if isinstance(dirs, SeededDirections):  # the recipe, not the tensors
            return SurfaceWriter(path, *grid, attrs, names=dirs.names, write_directions=dirs.write,
                                 accuracy=main.has_accuracy, extras=evaluation.extras)
        x_np, y_np = dirs.arrays()
        return SurfaceWriter(path, *grid, attrs, x_np, y_np, dirs.names, trajectory=dirs.trajectory,
                             accuracy=main.has_accuracy, extras=evaluation.extras)

    writer, todo = None, None
    try:
        opened = ctx.on_main(open_writer, share=lambda w: w.pending())
        writer, todo = (opened, opened.pending()) if ctx.is_main else (None, opened)
        # Each evaluator steps through its block with its own K (which an out-of-memory error may lower). A block
        # is also the unit of writing (an HDF5 write and a restore of theta*): noise next to a CPU point, not
        # next to a GPU point, so a GPU block holds at least 16 points (a crash loses about a second).
        block = main.points_per_step if ctx.device.type != "cuda" else max(16, main.points_per_step)
        block = ctx.broadcast(block)
        # A stop signal on any rank stops every rank after the same round, which rank 0 has written.
        stop = (lambda: ctx.max(signals.pending())) if ctx.world > 1 else None
        rank, world = (0, 1) if sharded else (ctx.rank, ctx.world)  # sharded: every rank evaluates every block
        compute_surface(writer, evaluation, block, progress and ctx.is_main, os.path.basename(path), grid=grid,
                        todo=todo, rank=rank, world=world, gather=ctx.gather, stop=stop)
    finally:
        if writer is not None:
            writer.close()
    return len(todo), (writer.elapsed if writer is not None else 0.0)
