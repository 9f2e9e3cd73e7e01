"""The grid of one surface: every split's evaluator (and the curvature map) at each block of points, written to
the file block by block, shared among the ranks of a torchrun job.
"""

from __future__ import annotations

import os
import time

import numpy as np

from landscape import signals
from landscape.data import Data
from landscape.directions import Directions
from landscape.evaluate import PlaneEvaluator
from landscape.evaluate.inplace import InPlacePerturbation
from landscape.objectives import Objective
from landscape.refine import DEFAULT_RTOL, Refinement, Rule
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
                 evaluation: SplitEvaluation, ctx, progress: bool, sharded: bool = False,
                 refine: Rule | None = None) -> tuple[int, float]:
    """Open (or resume) the file and compute its missing points; returns ``(points computed, seconds)``.

    Rank 0 alone opens (and locks) the file and writes; every rank cuts the pending points into the same blocks,
    which the ranks share out, or, for a model sharded over them (``sharded``), all evaluate together. With
    ``refine`` (the rule of ``--refine``), only the points :mod:`landscape.refine` asks for are evaluated, level
    by level, and the rest are predicted; the count returned is then the points evaluated.
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
    t0 = time.perf_counter()
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

        def run(points: np.ndarray, desc: str) -> None:
            compute_surface(writer, evaluation, block, progress and ctx.is_main, desc, grid=grid, todo=points,
                            rank=rank, world=world, gather=ctx.gather, stop=stop)

        if refine is None:
            run(todo, os.path.basename(path))
        else:
            todo = refine_grid(writer, refine, ctx, run, os.path.basename(path), evaluation.splits)
    finally:
        if writer is not None:
            writer.close()
    return len(todo), (time.perf_counter() - t0 if refine is not None else writer.elapsed if writer else 0.0)


def refine_rule(cfg: Config, cap: float) -> Rule:
    """``--refine``'s rule: the surface's ``--tolerance``/``--rtol``, or :data:`landscape.refine.DEFAULT_RTOL` when
    neither is given; points above ``cap`` need only be known as off the scale."""
    if cfg.tolerance is None and cfg.rtol is None:
        return Rule(0.0, DEFAULT_RTOL, cap)
    return Rule(cfg.tolerance or 0.0, cfg.rtol or 0.0, cap)


def refine_grid(writer, rule: Rule, ctx, run, desc: str, splits: list[str]) -> np.ndarray:
    """Evaluate the grid level by level as :class:`landscape.refine.Refinement` decides (rank 0 decides from the
    file's values, every rank evaluates its share of each level), then record the predictions of every point
    not evaluated. Returns the points evaluated in this run."""
    done_here = []
    driver = None
    if ctx.is_main:
        shape = writer.shape
        centre = int(np.ravel_multi_index(_centre(writer), shape))
        refinement = Refinement(shape, rule, centre)
        driver = refinement.levels(lambda: _read(writer, splits))
    while True:
        step = None
        if ctx.is_main:
            level, pts = next(driver, (None, None))
            if level is not None:
                step = (level, pts[~writer.done.reshape(-1)[pts]])  # a resumed run: only what is missing
        step = ctx.broadcast(step)
        if step is None:
            break
        level, pts = step
        done_here.append(pts)
        run(pts, f"{desc} level {level}")
    if ctx.is_main:
        _record_predictions(writer, refinement, splits)
    return np.concatenate(done_here) if done_here else np.zeros(0, dtype=np.int64)


def _centre(writer) -> tuple[int, ...]:
    jx = int(np.argmin(np.abs(writer.xcoords)))
    return (int(np.argmin(np.abs(writer.ycoords))), jx) if writer.ycoords is not None else (jx,)


def _read(writer, splits: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The evaluated values the refinement decides from: every split's loss and accuracy, and which points were
    evaluated (done and flagged so)."""
    ev = (writer.evaluated & writer.done).reshape(-1)
    vals = {f"{splits[0]}_loss": writer.loss.reshape(-1)}
    for sp in splits:  # the standard errors of adaptive sampling: a check allows for them
        if f"{sp}_loss_se" in writer.extras:
            vals[f"{sp}_loss_se"] = writer.extras[f"{sp}_loss_se"].reshape(-1)
    if writer.acc is not None:
        vals[f"{splits[0]}_acc"] = writer.acc.reshape(-1)
    for sp in splits[1:]:
        for what in ("loss", "acc"):
            if f"{sp}_{what}" in writer.extras:
                vals[f"{sp}_{what}"] = writer.extras[f"{sp}_{what}"].reshape(-1)
    return vals, ev


def _record_predictions(writer, refinement: Refinement, splits: list[str]) -> None:
    """Write the predicted points (values, ``{split}_n`` 0, done; ``{split}_evaluated`` stays false)."""
    pts = refinement.predicted()
    pts = pts[~writer.evaluated.reshape(-1)[pts]]
    if not len(pts):
        return
    vals = {k: v.reshape(-1)[pts] for k, v in refinement.values.items() if not k.endswith("_se")}
    main = splits[0]
    extras = {k: v for k, v in vals.items() if not k.startswith(f"{main}_")}
    extras.update({f"{sp}_n": np.zeros(len(pts)) for sp in splits})
    writer.write_block(pts, vals[f"{main}_loss"], vals.get(f"{main}_acc"), extras, evaluated=False)
