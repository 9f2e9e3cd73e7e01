"""The two engines behind one method, ``run(coords) -> (losses, accuracies)``.

* :class:`LoopEngine` writes one point's weights into the model copy, then runs the data through it. Fastest on
  the CPU and, measured on an H100, on a GPU whenever the data fills a batch.
* :class:`VmapEngine` stacks K parameter sets and evaluates them together with ``torch.func.functional_call``
  + ``vmap``: each batch of data is read once per block of K points. On an H100 it measured 1.57x the loop when
  the data (256 images) is smaller than one batch.

Both reduce the loss the same way (float64 rows of sums on the device, :data:`landscape.objectives.COLUMNS`, one
read-back per call), so they give the same numbers to float rounding; each point's result is its sums, sample and
batch counts (:data:`PointSums`), from which the driver takes the mean and its standard error. The batched engine
takes only a loss on a tensor output (:attr:`Objective.vmappable`); the driver gives everything else to the loop. With ``--tolerance`` a point
runs on growing prefixes of the (permuted) data and is checked after each: one read-back per chunk of data, never
per batch (:mod:`landscape.sampling`). Neither knows about memory policy or fallbacks: that is the driver's job.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from landscape.data import Data
from landscape.evaluate.device import precision_context
from landscape import batching
from landscape.evaluate.passes import add_moments, recompute_bn_statistics
from landscape.evaluate.perturb import Perturbation
from landscape.fold import FoldedNetwork, named_tensors
from landscape.losses import Units
from landscape.objectives import COLUMNS, Objective, unit_sums
from landscape.sampling import Sampling

# One point's result: its row of float64 sums (landscape.objectives.COLUMNS), samples used, batches used.
PointSums = tuple[list, int, int]


class Engine:
    """What both engines share: the perturbation, the data, the loss and how to reduce it.

    Args:
        pert: theta*, the directions and the model copy they move.
        data: evaluation data in the model copy's layout.
        objective: what a batch costs (probed: :class:`landscape.objectives.Objective`).
        batch_size, precision, bn_mode: as the evaluator's.
        folded: the BN-folded copy of the network, refolded per point, or ``None``.
        compile_model: run the forward through ``torch.compile`` (built once, reused as weights change).
        sampling: when a point may stop before the end of the data (default: never).
    """

    batched = False

    def __init__(self, pert: Perturbation, data: Data, objective: Objective, batch_size: int,
                 precision: str, bn_mode: str, folded: FoldedNetwork | None, compile_model: bool,
                 sampling: Sampling | None = None):
        self.pert, self.data, self.objective = pert, data, objective
        self.batch_size, self.precision, self.bn_mode = batch_size, precision, bn_mode
        self.folded, self.compile_model = folded, compile_model
        self.sampling = sampling or Sampling(len(data))
        self._run = None
        # a model sharded over ranks (landscape.sharded): each rank's sums, added over the ranks before reading
        self.reduce = None
        self.bn_data = data  # what --bn recompute estimates the statistics from (the evaluator may give another)

    @property
    def net(self) -> nn.Module:
        return self.folded.module if self.folded is not None else self.pert.module

    def _stops(self, row: list[float], n: int, batches: int, met: list[bool], i: int) -> bool:
        """Point ``i``'s check after a chunk; ``met[i]`` carries whether its tolerance was met at the last one."""
        stop, met[i] = self.sampling.stops_row(row, n, batches, met[i])
        return stop


class LoopEngine(Engine):
    """One point at a time through the model copy; the sums stay on the device until the block ends."""

    def runner(self):
        if self._run is None:
            self._run = torch.compile(self.net) if self.compile_model else self.net
        return self._run

    @torch.no_grad()
    def run(self, coords: list[tuple[float, float]]) -> list[PointSums]:
        # On a GPU the next point's weight update is queued while this point's batches still run (in stream
        # order, so it never overtakes them): one host synchronisation per block, not per point. With a
        # tolerance, one more per chunk of data of a point that may stop there.
        ends = self.sampling.ends()
        sums = torch.zeros(len(coords), len(COLUMNS), dtype=torch.float64, device=self.data.device)
        counts, met = [], [False] * len(coords)
        for i, (a, b) in enumerate(coords):
            self.pert.set_point(a, b)
            if self.bn_mode == "recompute":
                recompute_bn_statistics(self.pert.module, self.bn_data, self.batch_size, self.precision)
            if self.folded is not None:
                self.folded.load_from(self.pert.module)
            n = batches = 0
            for end in ends:
                batches += add_moments(self.runner(), self.data, self.batch_size, self.precision, self.objective,
                                       sums[i], n, end)
                n = end
                if end < ends[-1] and self._stops(sums[i].tolist(), n, batches, met, i):
                    break
            counts.append((n, batches))
        if self.reduce is not None:
            sums = self.reduce(sums)
        rows = sums.tolist()  # the one read-back of the block
        return [(r, n, nb) for r, (n, nb) in zip(rows, counts)]


class VmapEngine(Engine):
    """K points at once: stacked parameter sets, ``vmap`` over them, the data read once per block."""

    batched = True

    def runner(self):
        if self._run is None:
            from torch.func import functional_call, vmap

            net = self.net

            def forward(p, s, x):
                args, kwargs = (((), x) if isinstance(x, dict) else (x if isinstance(x, tuple) else (x,), {}))
                return functional_call(net, {**p, **s}, args, kwargs)

            # All tensors come in as arguments (none captured), so a compiled version is reused across blocks.
            run = vmap(forward, in_dims=(0, None, None))
            self._run = torch.compile(run) if self.compile_model else run
        return self._run

    @torch.no_grad()
    def run(self, coords: list[tuple[float, float]], pad_to: int | None = None) -> list[PointSums]:
        n_real = len(coords)
        if pad_to and n_real < pad_to:
            # A shorter stack is a new shape, i.e. a recompile (tens of seconds); a few repeated points cost less.
            coords = coords + [coords[-1]] * (pad_to - n_real)
        k = len(coords)
        stacked = self.pert.stacked(coords)
        shared = {n: t for n, t in named_tensors(self.pert.module).items() if n not in stacked}
        if self.bn_mode == "recompute":
            stacked.update(self._recomputed_bn_stats(stacked, shared, k))
            shared = {n: t for n, t in shared.items() if n not in stacked}
        if self.folded is not None:
            own = named_tensors(self.folded.module)
            folded = self.folded.parameters_from({**shared, **stacked})
            # A folded tensor is stacked (one per point) when any tensor it was folded from was.
            stacked = {n: t for n, t in folded.items() if t.dim() > own[n].dim()}
            shared = {n: t for n, t in folded.items() if n not in stacked}
        fwd = self.runner()
        device = self.data.device
        sums = torch.zeros(k, len(COLUMNS), dtype=torch.float64, device=device)
        ends = self.sampling.ends()
        active = list(range(n_real))  # the points still running (padding points are never read)
        counts = [[0, 0] for _ in range(k)]
        met = [False] * k
        start = 0
        for end in ends:
            if len(active) == n_real:  # every point still runs: the whole stack (padding included)
                params = stacked
            else:  # those still running; under compile padded back to k (a new shape would recompile)
                rows = active + [active[-1]] * (k - len(active)) if self.compile_model else active
                idx = torch.tensor(rows, device=device)
                params = {n: t.index_select(0, idx) for n, t in stacked.items()}
            live = torch.tensor(active, device=device)
            batches = 0
            with precision_context(self.precision, device):
                for x, y in self.data.batches(self.batch_size, start, end):
                    out = fwd(params, shared, x)  # (len(rows), B, ...)
                    sums.index_add_(0, live, self._sums(out, x, y)[:len(active)])
                    batches += 1
            for i in active:
                counts[i] = [end, counts[i][1] + batches]
            start = end
            if end == ends[-1]:
                break
            now = sums.tolist()  # the chunk's one read-back
            active = [i for i in active if not self._stops(now[i], end, counts[i][1], met, i)]
            if not active:
                break
        rows_out = sums.tolist()  # the one read-back of the block
        return [(r, n, nb) for r, (n, nb) in zip(rows_out[:n_real], counts[:n_real])]

    def _sums(self, out: torch.Tensor, x, y) -> torch.Tensor:
        """Per-point rows of sums (K, len(COLUMNS)) of a (K, B, ...) output: one flat call for built-in losses,
        else per point."""
        k = out.shape[0]
        obj = self.objective
        t = batching.targets_of(x, y, self.data.layout)
        if obj.loss.builtin:
            b = t.shape[0]
            tk = t.unsqueeze(0).expand(k, *t.shape).reshape(k * b, *t.shape[1:])
            u = obj.loss.units(out.flatten(0, 1), tk, obj.accuracy)
            per_point = (lambda v: v.reshape(k, b) if v is not None else None)
            return unit_sums(Units(per_point(u.loss), per_point(u.weight), per_point(u.correct), u.per_sample,
                                   u.ratio))
        return torch.stack([unit_sums(obj.loss.units(out[i], t, obj.accuracy)) for i in range(k)])

    def _recomputed_bn_stats(self, stacked: dict, shared: dict, k: int) -> dict:
        """Per-point BN running statistics from one training-mode pass of the data, all K points together.

        The running buffers are stacked (K, C) and updated in place under vmap with cumulative averaging, exactly
        as :func:`recompute_bn_statistics` does for one point.
        """
        from torch.func import functional_call, vmap

        model = self.pert.module
        device = self.data.device
        bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        stats = {}
        for n, m in bns.items():
            stats[f"{n}.running_mean"] = torch.zeros((k,) + m.running_mean.shape, device=device)
            stats[f"{n}.running_var"] = torch.ones((k,) + m.running_var.shape, device=device)
        counters = {f"{n}.num_batches_tracked": torch.zeros((), dtype=torch.long, device=device) for n in bns}
        rest = {n: t for n, t in shared.items() if n not in stats and n not in counters}
        momenta = {n: m.momentum for n, m in bns.items()}
        for m in bns.values():
            m.momentum = None
        model.train()
        try:
            def forward(p, s, x):
                return functional_call(model, {**p, **s, **counters, **rest}, (x,))

            fwd = vmap(forward, in_dims=(0, 0, None))
            with precision_context(self.precision, device):
                for x, _ in self.bn_data.batches(self.batch_size):
                    fwd(stacked, stats, x)  # images only: the driver gives other inputs to the loop engine
        finally:
            for n, m in bns.items():
                m.momentum = momenta[n]
            model.eval()
        return stats
