"""The evaluator: picks an engine, owns the memory policy and the fallbacks, and evaluates blocks of points.

:class:`PlaneEvaluator` evaluates L(theta* + a*dx + b*dy) at many (a, b) on the data's device. It never
touches the caller's model (it works on a copy, :mod:`landscape.evaluate.perturb`), and never fails where a
slower way would work:

* out of device memory: halve the points per step, then the batch, and retry;
* the batched (vmap) engine fails on this model: retry in NCHW layout (cuDNN's batch norm under ``vmap``
  cannot query channels_last contiguity; seen on an H100 in fp32/tf32), then with the loop engine, with a
  warning; only an error of the loop engine itself reaches the caller.

Every point comes with its standard error and sample count (:meth:`PlaneEvaluator.evaluate_points`); with a
``tolerance`` the data is put in one seeded order and each point stops as soon as it is known well enough
(:mod:`landscape.sampling`).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Sequence

import torch
import torch.nn as nn

from landscape.data import Data
from landscape.directions import Directions
from landscape.errors import LandscapeError
from landscape.evaluate.device import (BN_MODES, PRECISIONS, default_batch_size, gpu_bytes_per_image,
                                       plan_gpu_step)
from landscape.evaluate.engines import Engine, LoopEngine, VmapEngine
from landscape.evaluate.perturb import Perturbation
from landscape.fold import fold_batchnorm
from landscape.losses import LossSpec
from landscape.objectives import Objective, ObjectiveFn, resolve_objective
from landscape.sampling import DEFAULT_MIN_SAMPLES, Sampling
from landscape.seeded import SeededDirections


class PlaneEvaluator:
    """Evaluates L(theta* + a*dx + b*dy) at many (a, b), on the data's device.

    Args:
        model: the trained network (copied; the caller's object is left exactly as it came in).
        data: evaluation data (:class:`Data`), resident on its device or streamed to it.
        xdir: a :class:`Directions`, or the x direction as a list of tensors (then ``ydir``, ``dir_type``).
        ydir: the y direction (``None``: 1D).
        dir_type: ``weights`` or ``states`` (with lists only).
        batch_size: samples per forward pass; ``None``: :func:`default_batch_size`, on a GPU capped by free
            memory and balanced across the data.
        precision: ``fp32`` (strict), ``tf32`` or ``bf16`` (autocast).
        bn_mode: ``eval`` (BN running statistics, as the reference) or ``recompute`` (per point).
        points_per_step: K points per step; K > 1 is the batched (vmap) engine. ``None``: 1, except on a GPU when
            the data is smaller than one batch (then K fills the step, within free memory).
        fold_bn: evaluate with each conv -> BN pair folded into one conv, refolded per point (same numbers to
            float rounding). Default False here; ``None`` (what the CLI and :func:`landscape.compute` pass by
            default): on a GPU when the model has such pairs (measured faster there), off on the CPU (measured no
            faster).
        compile_model: run the forward passes through ``torch.compile`` (compiled once, on the first point).
        loss: ``cross_entropy``, ``mse``, ``nll``, a callable ``fn(output, target)`` or a ``Loss``; default: the
            model's own loss when its output carries one, else ``cross_entropy`` (:mod:`landscape.objectives`).
        tolerance: adaptive sampling: each point stops once the 95 % interval of its mean loss is at most this
            wide on either side (loss units), or lies above :attr:`cap`. ``None``: every point on all the data
            (unless ``rtol``).
        rtol: adaptive sampling relative to each point's mean loss: it stops once the 95 % half-width is at most
            ``tolerance + rtol * |mean|`` (``--rtol``; 0 or ``None``: none).
        min_samples: samples before a point may stop (default :data:`landscape.sampling.DEFAULT_MIN_SAMPLES`).
        sample_seed: the seed of the one permutation of the data that every point reads in order.
        objective: ``fn(model, batch)`` returning per-sample losses or their mean, instead of ``loss``; or a
            resolved :class:`~landscape.objectives.Objective`.
        perturbation: an :class:`~landscape.evaluate.inplace.InPlacePerturbation` of the caller's model (the lean
            path, shared by the evaluators of a surface's splits); default: a private copy of the model
            (:class:`~landscape.evaluate.perturb.Perturbation`). The lean path evaluates one point at a time, in
            the model's own memory format, without BN folding.
        bn_data: with ``bn_mode="recompute"``, the data the statistics are estimated from (default: ``data``; a
            curve between two solutions estimates them on the training data for every split).
        ranks: a model sharded with FSDP2 over this many ranks (:mod:`landscape.sharded`): ``data`` is this rank's
            equal share, every point's sums are added over the ranks, and its counts are the ranks' together.

    Attributes:
        objective: what a batch costs, probed on the data (its ``name`` is what the file records as ``loss``).
        has_accuracy: accuracy is computed (class labels, or token labels of a token loss).
        sampling: how points are sampled (:class:`landscape.sampling.Sampling`); set ``sampling.cap`` (e.g. to
            the figure's cap) before evaluating adaptively, or points stop only on the tolerance.
    """

    def __init__(self, model: nn.Module, data: Data, xdir: Directions | Sequence[torch.Tensor],
                 ydir: Sequence[torch.Tensor] | None = None, dir_type: str = "weights",
                 batch_size: int | None = None, precision: str = "fp32", bn_mode: str = "eval",
                 points_per_step: int | None = None, fold_bn: bool | None = False, compile_model: bool = False,
                 loss: LossSpec | None = None, tolerance: float | None = None, min_samples: int | None = None,
                 sample_seed: int = 0, rtol: float | None = None,
                 objective: Objective | ObjectiveFn | str | None = None, perturbation=None, ranks: int = 1,
                 bn_data: Data | None = None):
        if bn_mode not in BN_MODES:
            raise LandscapeError(f"unknown BN mode {bn_mode!r}; valid: {', '.join(BN_MODES)}")
        if precision not in PRECISIONS:
            raise LandscapeError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
        if points_per_step is not None and points_per_step < 1:
            raise LandscapeError(f"--points-per-step must be >= 1; got {points_per_step}")
        if batch_size is not None and batch_size < 1:
            raise LandscapeError(f"--batch-size must be a positive integer; got {batch_size}")
        self.directions = xdir if isinstance(xdir, (Directions, SeededDirections)) else \
            Directions.of(model, xdir, ydir, dir_type)
        self.device = data.device
        self.precision, self.bn_mode, self.compile_model = precision, bn_mode, compile_model
        # a copy: each evaluator probes its own data (a caller's Objective is left as it was)
        self.objective = dataclasses.replace(objective) if isinstance(objective, Objective) else \
            resolve_objective(loss, objective)
        # the batched engine's BN recompute takes image tensors; any other inputs go through the loop engine
        self._batchable = data.images or bn_mode != "recompute"
        if not self._batchable and points_per_step is not None and points_per_step > 1:
            raise LandscapeError("--bn recompute with inputs other than images (N, C, H, W) runs one point at a "
                                 "time; drop --points-per-step")
        self.sampling = Sampling(len(data), data.population, tolerance, rtol or 0.0,
                                 min_samples or DEFAULT_MIN_SAMPLES, seed=sample_seed)
        perm = self.sampling.permutation()
        if perm is not None:  # the order every point reads the data in (gathered batch by batch: no copy)
            data = data.in_order(torch.from_numpy(perm))
        self._source, self._data, self._shared, self.ranks = model, data, perturbation, ranks
        self._bn_data = bn_data
        if ranks > 1 and (tolerance is not None or rtol):
            raise LandscapeError("--tolerance/--rtol with a sharded model is not supported yet (each point reads "
                                 "every rank's share of the data); drop them")
        if perturbation is not None:
            if points_per_step is not None and points_per_step > 1:
                raise LandscapeError("the lean path evaluates one point at a time (stacking K points would hold K "
                                     "copies of the moving weights); drop --points-per-step or pass --no-lean")
            if fold_bn:
                raise LandscapeError("--fold-bn folds BN into a copy of the network, which the lean path avoids; "
                                     "drop --fold-bn or pass --no-lean")
            points_per_step, fold_bn = 1, False
        self._fold_request = fold_bn
        self._memory_format = torch.channels_last if perturbation is None else torch.contiguous_format
        self._build()
        self.objective.probe(self.pert.module, self.data)
        self.has_accuracy = self.objective.accuracy
        self.sampling.per_sample, self.sampling.weighted = self.objective.per_sample, self.objective.weighted
        if points_per_step is not None and points_per_step > 1 and not self.objective.vmappable:
            raise LandscapeError(f"--points-per-step {points_per_step} is the batched (vmap) engine, which takes a "
                                 "model returning a tensor and a loss= on it (not the model's own loss or an "
                                 "objective); drop --points-per-step")
        sample_shape = tuple(data.x.shape[1:]) if data.images else ()
        self.batch_size = batch_size or default_batch_size(self.device, sample_shape, data.tokens)
        self.points_per_step = points_per_step or 1  # the CPU engine: the loop measured fastest there
        if self.device.type == "cuda" and (batch_size is None or points_per_step is None):
            batch, k = plan_gpu_step(len(data), self.batch_size, gpu_bytes_per_image(
                self.model, self.data, cost=lambda m, x, y: self.objective.moments(m, x, y, self.data.layout)),
                                     torch.cuda.mem_get_info(self.device)[0], balance=batch_size is None)
            self.batch_size = batch
            self.points_per_step = points_per_step or (k if self.objective.vmappable and self._batchable else 1)

    # -- construction ------------------------------------------------------------------------------------------
    def _build(self) -> None:
        """The model copy, the data and the folded network in the current memory format."""
        self.pert = self._shared or Perturbation(self._source, self.directions, self.device, self._memory_format)
        self.data = self._data.with_layout(self._memory_format)
        self._folded = None
        if self._fold_request or (self._fold_request is None and self.device.type == "cuda"):
            try:
                self._folded = fold_batchnorm(self.pert.module, self._memory_format)
            except LandscapeError:
                if self._fold_request:
                    raise  # asked for explicitly: say why it cannot be done
        self._engines: dict[bool, Engine] = {}

    @property
    def model(self) -> nn.Module:
        """The network the evaluator moves: its own copy, or on the lean path the caller's (theta* between
        calls)."""
        return self.pert.module

    @property
    def fold_bn(self) -> bool:
        return self._folded is not None

    def engine(self) -> Engine:
        batched = self.points_per_step > 1
        if batched not in self._engines:
            cls = VmapEngine if batched else LoopEngine
            self._engines[batched] = cls(self.pert, self.data, self.objective, self.batch_size,
                                         self.precision, self.bn_mode, self._folded, self.compile_model,
                                         self.sampling)
            if self._bn_data is not None:
                self._engines[batched].bn_data = self._bn_data.with_layout(self._memory_format)
            if self.ranks > 1:
                from landscape.sharded import all_sum

                self._engines[batched].reduce = all_sum
        e = self._engines[batched]
        e.batch_size = self.batch_size  # the memory policy may have lowered it
        return e

    def describe(self) -> str:
        """How points are evaluated, e.g. ``batch 512, 1 point per step, BN folded``."""
        k = self.points_per_step
        return (f"batch {self.batch_size}, {k} point{'s' if k > 1 else ''} per step"
                + (", lean" if self._shared is not None else "") + (", BN folded" if self.fold_bn else "") + (", compiled" if self.compile_model else "")
                + (", streamed" if self.data.streamed else ""))

    # -- evaluation --------------------------------------------------------------------------------------------
    def evaluate(self, coords: Sequence[tuple[float, float]]) -> tuple[list[float], list[float] | None]:
        """Loss and accuracy (``None`` without class labels) at each (a, b); a diverged point returns its inf/NaN
        loss as it is."""
        losses, accs, _ = self.evaluate_points(coords)
        return losses, accs

    def evaluate_points(self, coords: Sequence[tuple[float, float]]
                        ) -> tuple[list[float], list[float] | None, dict[str, list[float]]]:
        """Like :meth:`evaluate`, plus each point's precision: ``{"loss_se": ..., "n": ..., "acc_se": ...}``,
        the standard errors of the mean loss and of the accuracy (percent; only with accuracy) and the samples
        used (:mod:`landscape.sampling`)."""
        sums = self._sums(coords)
        points = [self.sampling.point(row, n, nb) for row, n, nb in sums]
        stats = {"loss_se": [p["loss_se"] for p in points], "n": [float(n) for _, n, _ in sums]}
        losses = [p["loss"] for p in points]
        if not self.has_accuracy:
            return losses, None, stats
        stats["acc_se"] = [p["acc_se"] for p in points]
        return losses, [p["acc"] for p in points], stats

    def centre_loss(self) -> float:
        """The loss at theta* on all the data, whatever the tolerance (what the figure's cap is made from)."""
        sp = self.sampling
        kept, (sp.tolerance, sp.rtol) = (sp.tolerance, sp.rtol), (None, 0.0)
        try:
            return self.evaluate([(0.0, 0.0)])[0][0]
        finally:
            sp.tolerance, sp.rtol = kept

    def _sums(self, coords: Sequence[tuple[float, float]]) -> list:
        """Every point's loss sums and counts (see :data:`landscape.evaluate.engines.PointSums`)."""
        coords = [(float(a), float(b)) for a, b in coords]
        out: list = []
        # A grid repeats the same few shapes thousands of times: let cuDNN time its algorithms once per shape
        # instead of trusting its heuristics (no effect on the CPU).
        benchmark, torch.backends.cudnn.benchmark = torch.backends.cudnn.benchmark, True
        try:
            i = 0
            while i < len(coords):
                engine = self.engine()
                # the loop engine takes all the points at once: it reads its results back once, at the end
                k = min(self.points_per_step, len(coords) - i) if engine.batched else len(coords) - i
                try:
                    if engine.batched:
                        got = engine.run(coords[i:i + k], self.points_per_step if self.compile_model else None)
                    else:
                        got = engine.run(coords[i:i + k])
                except torch.cuda.OutOfMemoryError:
                    self._shrink()
                    continue
                except LandscapeError:
                    raise
                except Exception as e:  # noqa: BLE001 - see _step_down and the compile note below
                    if engine.batched and self._step_down(e):
                        continue
                    if not self.compile_model:
                        raise
                    # Compilation happens on the first call (inductor needs a C++ compiler on the CPU, Triton
                    # on a GPU); its failures are long tracebacks, so say what failed and how to avoid it.
                    raise LandscapeError(f"torch.compile failed ({type(e).__name__}: {_first_line(e)}); run "
                                         "without --compile") from e
                out += [(row, n * self.ranks, nb * self.ranks) for row, n, nb in got]
                i += k
        finally:
            # The copy leaves every call at theta*, whatever happened, so the next call starts from it.
            self.pert.restore()
            torch.backends.cudnn.benchmark = benchmark
        return out

    def _shrink(self) -> None:
        """After an out-of-memory error: halve the points per step, then the batch; give up below 1 sample."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.points_per_step > 1:
            self.points_per_step //= 2
        elif self.batch_size > 1:
            self.batch_size //= 2
        else:
            raise LandscapeError("out of device memory even with one point and one sample per step; use a smaller "
                                 "model or input, or --device cpu")

    def _step_down(self, e: Exception) -> bool:
        """The batched engine failed: try NCHW, then the loop engine. Returns whether there was a step left."""
        self.pert.restore()
        if self._memory_format == torch.channels_last and self.data.images:
            # vmap cannot answer channels_last contiguity queries (cuDNN's batch norm asks them); NCHW works.
            self._memory_format = torch.contiguous_format
            self._build()
            return True
        warnings.warn(f"the batched engine (vmap over {self.points_per_step} points) cannot run this model "
                      f"({type(e).__name__}: {_first_line(e)}); evaluating one point at a time instead",
                      RuntimeWarning, stacklevel=3)
        self.points_per_step = 1
        self._memory_format = torch.channels_last
        self._build()
        return True


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:200]
