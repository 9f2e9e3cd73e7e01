"""Random directions that are never stored: regenerated on the device, tensor by tensor and chunk by chunk, from
a per-tensor key and the filter norms (the lean path for large models, :mod:`landscape.evaluate.inplace`).

The generator is counter-based: element ``k`` of a tensor's direction depends only on the tensor's key and ``k``,
so any chunk can be made on its own, on any device, in any order, and the values do not depend on the chunking.
For large models the generator runs fused by ``torch.compile`` (several times faster than eagerly on a CPU,
with the same values bit for bit).
Its uniforms are Widynski's "squares" RNG (2020; ``squares64``: four rounds of a 64-bit middle square keyed by
a Weyl sequence, two 32-bit uniforms per counter) in 64-bit integer arithmetic, which CPUs and GPUs compute
identically; the normals are the Box-Muller transform of a pair of uniforms in float64, rounded to float32 (so a
CPU and a GPU agree to the last bit except where the two float64 libraries round an argument differently, about
once in 10^8 elements, and then by one float32 unit).

A direction is then normalized like the materialized ones (:func:`landscape.directions.normalize_direction`):
each tensor's scale factors (one per filter, ``||w_i|| / (||d_i|| + 1e-10)``; one per tensor for ``layer``) are
computed once, from one generation pass, and recorded in the surface file with the keys, so
:meth:`SeededDirections.materialize` rebuilds the tensors bit for bit (on the same kind of device) and a resumed
surface regenerates exactly the directions it began with. What the file holds per tensor: its name, shape, kind,
two keys and the scales: well under 1 % of the weights' bytes for any network whose filters hold more than a few
hundred weights.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn

from landscape.errors import LandscapeError
from landscape.sharded import all_sum, gather_rows, local_rows

GENERATOR = "squares64-boxmuller-v1"
M32 = 0xFFFFFFFF
# kinds of tensor in a plane: not moved; a filter/layer-normalized Gaussian; the weights themselves (--ignore none
# on a bias or BN tensor, as the reference does); a Gaussian times the weights (--norm weight)
ZERO, NORMAL, WEIGHTS, NORMAL_TIMES_WEIGHTS = 0, 1, 2, 3
DEFAULT_CHUNK = 1 << 20  # elements generated at once (at most): bounds the transient memory, never the values
COMPILE_ELEMENTS = 10_000_000  # moving elements from which the generator is compiled (its one-off cost pays)


def _signed(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _splitmix64(v: int) -> int:
    v = (v + 0x9E3779B97F4A7C15) & ((1 << 64) - 1)
    v = ((v ^ (v >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    v = ((v ^ (v >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return v ^ (v >> 31)


def tensor_key(seed: int, axis: int, index: int) -> int:
    """The key of tensor ``index`` of direction ``axis`` (0: x, 1: y) for ``seed``: a well-mixed odd 64-bit
    number (as a signed int64, what torch holds)."""
    v = _splitmix64(_splitmix64(_splitmix64(int(seed)) ^ (axis + 1)) ^ (index + 1))
    return _signed(v | 1)


def _rot32(x: torch.Tensor) -> torch.Tensor:
    return ((x >> 32) & M32) | (x << 32)


def _normal_pairs(ctr: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Two standard normals per counter, interleaved (float32): Widynski's squares64 (wrapping int64
    arithmetic; ``key`` a 0-dim int64 tensor, so one compiled kernel serves every tensor), then Box-Muller in
    float64."""
    x = ctr * key
    y = x
    z = y + key
    x = _rot32(x * x + y)
    x = _rot32(x * x + z)
    x = _rot32(x * x + y)
    t = x * x + z
    x = _rot32(t)
    bits = t ^ (((x * x + y) >> 32) & M32)
    u1 = (((bits >> 32) & M32).double() + 0.5) * 2.0 ** -32  # in (0, 1): the log is finite
    u2 = ((bits & M32).double() + 0.5) * 2.0 ** -32
    r = torch.sqrt(-2.0 * torch.log(u1))
    angle = 2.0 * math.pi * u2
    return torch.stack([r * torch.cos(angle), r * torch.sin(angle)], 1).reshape(-1).float()


_COMPILED: dict = {}


def _pairs_fn(compiled: bool):
    """The eager generator, or the same computation fused by ``torch.compile`` (several times faster; the same
    values, bit for bit, tested); a compiler that fails falls back to the eager one with a warning."""
    if not compiled:
        return _normal_pairs
    if "fn" not in _COMPILED:
        _COMPILED["fn"] = torch.compile(_normal_pairs, dynamic=True)
    return _COMPILED["fn"]


@contextlib.contextmanager
def _quiet_compiler():
    """Inductor's one-off notice about CUDA_HOME on a CPU-only machine is not the user's business."""
    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def normals(key: int, start: int, count: int, device: torch.device | str = "cpu", compiled: bool = False
            ) -> torch.Tensor:
    """Elements ``start .. start + count`` of the standard normal sequence of ``key``, float32 on ``device``.

    ``key`` must be well mixed (:func:`tensor_key`): the squares generator is designed for such keys, and a small
    one (say 99) gives visibly non-random values at the first counters."""
    if count <= 0:
        return torch.empty(0, dtype=torch.float32, device=device)
    p0, p1 = start // 2, (start + count - 1) // 2 + 1
    ctr = torch.arange(p0, p1, dtype=torch.int64, device=device)
    k = torch.tensor(key, dtype=torch.int64, device=device)
    try:
        with _quiet_compiler():
            z = _pairs_fn(compiled)(ctr, k)
    except Exception as e:  # noqa: BLE001 - inductor needs a C++ compiler (CPU) or Triton (GPU)
        if not compiled:
            raise
        import warnings

        warnings.warn(f"torch.compile of the direction generator failed ({type(e).__name__}); generating eagerly "
                      "(same values, slower)", RuntimeWarning, stacklevel=2)
        _COMPILED["fn"] = _normal_pairs
        z = _normal_pairs(ctr, k)
    off = start - 2 * p0
    return z[off:off + count]


@dataclass
class TensorPlan:
    """How one tensor's directions are made: its kind, a key and scale factors per axis (x, y)."""

    name: str
    shape: tuple
    kind: int
    keys: list = field(default_factory=list)  # one per axis of the plane (none for ZERO and WEIGHTS)
    scales: list = field(default_factory=list)  # per axis: float32 per filter (rows,), (1,) for layer, or None

    @property
    def rows(self) -> int:
        return int(self.shape[0]) if self.shape else 1

    @property
    def row_len(self) -> int:
        return int(np.prod(self.shape[1:])) if len(self.shape) > 1 else 1

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass
class SeededDirections:
    """A plane whose random directions are regenerated on demand (see the module docstring).

    Attributes:
        names: the perturbed tensors' names, in ``dir_type`` order (every one, moved or not).
        plans: one :class:`TensorPlan` per name.
        two_d: a y direction too.
        dir_type, source, seed, norm: as for :class:`landscape.directions.Directions`.
    """

    names: list[str]
    plans: list[TensorPlan]
    two_d: bool
    dir_type: str = "weights"
    source: str = "random"
    seed: int = 123
    norm: str = "filter"
    trajectory: dict | None = None
    generator: str = GENERATOR

    @property
    def y(self):  # what code written for Directions asks to tell 1D from 2D
        return True if self.two_d else None

    def moves(self, i: int) -> bool:
        return self.plans[i].kind != ZERO

    def chunk(self, i: int, axis: int, r0: int, r1: int, device: torch.device,
              theta: torch.Tensor | None = None, compiled: bool = False) -> torch.Tensor:
        """Rows ``r0 .. r1`` of tensor ``i``'s direction ``axis``, float32 on ``device`` (``theta``: those rows of
        the weights, for the kinds that need them; ``compiled``: the fused generator, same values)."""
        p = self.plans[i]
        shape = (r1 - r0,) + tuple(p.shape[1:]) if p.shape else ()
        if p.kind == WEIGHTS:
            return theta.float().clone()
        d = normals(p.keys[axis], r0 * p.row_len, (r1 - r0) * p.row_len, device, compiled).view(shape)
        if p.kind == NORMAL_TIMES_WEIGHTS:
            return d.mul_(theta.float())
        s = p.scales[axis]
        if s is None:
            return d
        s = torch.from_numpy(s[r0:r1] if len(s) > 1 else s).to(device)
        return d.mul_(s.view(-1, *([1] * (d.dim() - 1))) if d.dim() else s.reshape(()))

    def materialize(self, model: nn.Module | None = None):
        """The directions as tensors (CPU, float32), bit for bit what :meth:`chunk` gives on the CPU; ``model``
        (theta*) is needed only for ``--ignore none`` and ``--norm weight`` planes."""
        from landscape.directions import Directions, perturbed_tensors

        weights = perturbed_tensors(model, self.dir_type)[1] if model is not None else None
        out = []
        for axis in range(2 if self.two_d else 1):
            d = []
            for i, p in enumerate(self.plans):
                if p.kind == ZERO:
                    d.append(torch.zeros(p.shape))
                    continue
                if p.kind in (WEIGHTS, NORMAL_TIMES_WEIGHTS) and weights is None:
                    raise LandscapeError("this plane's directions depend on the weights (--ignore none or --norm "
                                         "weight): pass the model to rebuild them")
                theta = weights[i].detach().cpu() if weights is not None else None
                d.append(self.chunk(i, axis, 0, p.rows, torch.device("cpu"), theta))
            out.append(d)
        return Directions(self.names, out[0], out[1] if self.two_d else None, self.dir_type, self.source)

    def check(self, model: nn.Module, where: str = "the directions") -> None:
        from landscape.directions import perturbed_tensors

        names, tensors = perturbed_tensors(model, self.dir_type)
        if len(names) != len(self.plans) or any(tuple(t.shape) != tuple(p.shape) for t, p in zip(tensors, self.plans)):
            raise LandscapeError(f"{where}: the regenerable directions were made for another architecture ("
                                 f"{len(self.plans)} tensors, the model has {len(names)})")

    # -- the surface file --------------------------------------------------------------------------------------
    def write(self, h5) -> None:
        """Record the plane in ``xdirection``/``ydirection`` groups: attrs ``generator``, ``names``, ``seed``,
        ``norm``; datasets ``kinds``, ``keys``, ``shapes`` and ``scales/<i>`` (no tensors)."""
        import h5py

        for axis, group in enumerate(("xdirection", "ydirection")[:2 if self.two_d else 1]):
            if group in h5:
                del h5[group]
            g = h5.create_group(group)
            g.attrs["generator"] = self.generator
            g.attrs["names"] = np.array(self.names, dtype=h5py.string_dtype())
            g.attrs["seed"], g.attrs["norm"] = int(self.seed), self.norm
            g["kinds"] = np.array([p.kind for p in self.plans], dtype=np.int8)
            g["keys"] = np.array([p.keys[axis] if p.keys else 0 for p in self.plans], dtype=np.int64)
            g["shapes"] = np.array([list(p.shape) + [-1] * (8 - len(p.shape)) for p in self.plans], dtype=np.int64)
            s = g.create_group("scales")
            for i, p in enumerate(self.plans):
                if p.kind == NORMAL and p.scales[axis] is not None:
                    s.create_dataset(str(i), data=p.scales[axis])

    @classmethod
    def read(cls, h5, dir_type: str, source: str) -> "SeededDirections":
        """The plane a surface file records (see :meth:`write`)."""
        x = h5["xdirection"]
        groups = [x] + ([h5["ydirection"]] if "ydirection" in h5 else [])
        gen = str(x.attrs.get("generator", ""))
        if gen != GENERATOR:
            raise LandscapeError(f"the file's directions come from generator {gen!r}; this version makes "
                                 f"{GENERATOR!r}; use the landscape version that wrote the file")
        names = [s.decode() if isinstance(s, bytes) else str(s) for s in x.attrs["names"]]
        kinds = x["kinds"][()]
        shapes = [tuple(int(v) for v in row if v >= 0) for row in x["shapes"][()]]
        plans = []
        for i, name in enumerate(names):
            kind = int(kinds[i])
            if kind in (ZERO, WEIGHTS):  # nothing generated: no keys, no scales
                plans.append(TensorPlan(name, shapes[i], kind))
                continue
            keys = [int(g["keys"][i]) for g in groups]
            scales = [np.asarray(g["scales"][str(i)][()], dtype=np.float32) if str(i) in g["scales"] else None
                      for g in groups]
            plans.append(TensorPlan(name, shapes[i], kind, keys, scales))
        return cls(names, plans, len(groups) == 2, dir_type, source, int(x.attrs["seed"]), str(x.attrs["norm"]))


def is_seeded(h5) -> bool:
    """Whether a surface file records regenerable directions (rather than the tensors)."""
    return "xdirection" in h5 and "generator" in h5["xdirection"].attrs


def chunk_for(moving_elements: int) -> int:
    """Elements generated at once for a plane of ``moving_elements``: 1/64 of them, between 16 Ki and
    :data:`DEFAULT_CHUNK` (the generator's temporaries take about 40 bytes an element, so a chunk's transient stays
    a few per cent of the moving weights' bytes)."""
    return int(min(DEFAULT_CHUNK, max(1 << 14, moving_elements // 256)))


def row_chunks(plan: TensorPlan, chunk: int = DEFAULT_CHUNK) -> Iterator[tuple[int, int]]:
    """Row ranges of at most ``chunk`` elements (at least one row)."""
    step = max(1, chunk // max(1, plan.row_len))
    for r0 in range(0, plan.rows, step):
        yield r0, min(plan.rows, r0 + step)


def make_seeded(model: nn.Module, two_d: bool, seed: int = 123, norm: str = "filter", ignore: str = "biasbn",
                dir_type: str = "weights", moving: list[bool] | None = None, device: torch.device | str = "cpu",
                chunk: int | None = None, compiled: bool | None = None) -> SeededDirections:
    """Random filter-normalized directions as a :class:`SeededDirections`: the keys, and the scale factors from
    one pass over each moving tensor (made on ``device``, chunk by chunk: never a whole direction in memory).

    Args:
        moving: per perturbed tensor, whether it may move (``--params``); default: all.
        chunk: elements generated at once (default :func:`chunk_for`).
        compiled: the fused generator (default: for :data:`COMPILE_ELEMENTS` moving elements or more).
    """
    from landscape.directions import IGNORES, NORMS, perturbed_tensors

    if ignore not in IGNORES:
        raise LandscapeError(f"unknown --ignore {ignore!r}; valid: {', '.join(IGNORES)}")
    if norm not in NORMS:
        raise LandscapeError(f"unknown normalization {norm!r}; valid: {', '.join(NORMS)}")
    names, tensors = perturbed_tensors(model, dir_type)
    device = torch.device(device)
    elements = sum(t.numel() for t, m in zip(tensors, moving or [True] * len(tensors)) if m and t.is_floating_point())
    compiled = elements >= COMPILE_ELEMENTS if compiled is None else compiled
    chunk = chunk or chunk_for(elements)
    axes = range(2 if two_d else 1)
    plans = []
    for i, (name, w) in enumerate(zip(names, tensors)):
        shape = tuple(w.shape)
        if not w.is_floating_point() or (moving is not None and not moving[i]) or \
                (w.dim() <= 1 and ignore == "biasbn"):
            plans.append(TensorPlan(name, shape, ZERO))
        elif w.dim() <= 1:
            plans.append(TensorPlan(name, shape, WEIGHTS))
        elif norm == "weight":
            plans.append(TensorPlan(name, shape, NORMAL_TIMES_WEIGHTS, [tensor_key(seed, a, i) for a in axes],
                                    [None for _ in axes]))
        else:
            plan = TensorPlan(name, shape, NORMAL, [tensor_key(seed, a, i) for a in axes], [None for _ in axes])
            if norm != "none":
                plan.scales = [_scales(plan, w, a, norm, device, chunk, compiled) for a in axes]
            plans.append(plan)
    return SeededDirections(names, plans, two_d, dir_type, "random", int(seed), norm)


@torch.no_grad()
def _scales(plan: TensorPlan, w: torch.Tensor, axis: int, norm: str, device: torch.device, chunk: int,
            compiled: bool) -> np.ndarray:
    """``||w_i|| / (||d_i|| + 1e-10)`` per filter (``layer``: ``||w|| / ||d||``), float32, as
    :func:`landscape.directions.normalize_direction` computes them. On a model sharded with FSDP2 each rank
    computes its rows' and the ranks assemble the whole (:mod:`landscape.sharded`: a collective)."""
    local, offset = local_rows(w)
    mine = TensorPlan(plan.name, tuple(local.shape), plan.kind)
    dn, wn = [torch.zeros(0, device=device)], [torch.zeros(0, device=device)]
    for r0, r1 in row_chunks(mine, chunk):
        d = normals(plan.keys[axis], (offset + r0) * plan.row_len, (r1 - r0) * plan.row_len, device,
                    compiled).view(r1 - r0, -1)
        wr = local.detach()[r0:r1].to(device, torch.float32).reshape(r1 - r0, -1)
        if norm == "filter":
            dn.append(d.norm(dim=1))
            wn.append(wr.norm(dim=1))
        else:  # layer: the whole tensor's norms, from the squares of its chunks
            dn.append(d.square().sum(dtype=torch.float32).reshape(1))
            wn.append(wr.square().sum(dtype=torch.float32).reshape(1))
    if norm == "filter":
        scale = torch.cat(wn) / (torch.cat(dn) + 1e-10)
        return gather_rows(scale, offset, plan.rows).cpu().numpy().astype(np.float32)
    sums = all_sum(torch.stack([torch.cat(wn).sum(), torch.cat(dn).sum()]).double()).float()
    return (sums[0].sqrt() / sums[1].sqrt()).reshape(1).cpu().numpy().astype(np.float32)
