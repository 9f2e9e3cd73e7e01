"""Models larger than one device: a network sharded with FSDP2 (``fully_shard``) under ``torchrun``.

Every rank holds a slice (rows along dim 0) of each parameter. The surface then runs in *sharded* mode:

* each rank moves its own slice in place (the lean path, :mod:`landscape.evaluate.inplace`): the counter-based
  directions of :mod:`landscape.seeded` let a rank generate exactly its rows, by their global indices, so the
  directions are the very ones a single process makes for the unsharded model (same seed, same values);
* every point is evaluated by all ranks together: each rank runs its equal share of the samples through the
  sharded model (whose forward gathers the weights layer by layer) and the loss sums are added across ranks;
* rank 0 writes the file, as in the point-sharing mode of :mod:`landscape.distributed`.

Only ``Shard(0)`` or replicated placements on a one-dimensional mesh are taken (what ``fully_shard`` makes).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn

from landscape.errors import LandscapeError


def _dtensor_type():
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without distributed tensors
        return None
    return DTensor


def is_dtensor(t) -> bool:
    cls = _dtensor_type()
    return cls is not None and isinstance(t, cls)


def is_sharded(model: nn.Module) -> bool:
    """Whether any of the model's parameters is a distributed tensor (FSDP2)."""
    return any(is_dtensor(p) for p in model.parameters())


def local_rows(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """This rank's part of ``t`` (the storage itself, not a copy) and the global index of its first row.

    Raises:
        LandscapeError: a placement other than ``Shard(0)``/``Replicate`` on a one-dimensional mesh.
    """
    if not is_dtensor(t):
        return t, 0
    from torch.distributed.tensor import Replicate, Shard

    placements = tuple(t.placements)
    if t.device_mesh.ndim != 1 or not all(isinstance(p, (Replicate, Shard)) for p in placements) or \
            any(isinstance(p, Shard) and p.dim != 0 for p in placements):
        raise LandscapeError(f"a sharded parameter with placements {placements} on a {t.device_mesh.ndim}-D mesh; "
                             "the landscape of a sharded model takes fully_shard's Shard(0) on a 1-D mesh")
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    _, offset = compute_local_shape_and_global_offset(t.shape, t.device_mesh, placements)
    return t.to_local(), int(offset[0]) if len(offset) else 0


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor on every rank (a collective for a distributed tensor)."""
    return t.full_tensor() if is_dtensor(t) else t


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the ranks, in place (float64 sums; gloo or NCCL)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def gather_rows(local: torch.Tensor, offset: int, rows: int) -> torch.Tensor:
    """Every rank's ``local`` rows (starting at global row ``offset``) assembled into the whole ``rows`` on
    every rank (small tensors: the directions' per-filter scales)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (offset, local.cpu()))
    out = torch.empty((rows,) + tuple(local.shape[1:]), dtype=local.dtype)
    for off, part in parts:
        out[off:off + len(part)] = part
    return out


def shard_of(data, rank: int, world: int):
    """This rank's equal, contiguous share of ``data`` (a :class:`~landscape.data.Data`).

    Raises:
        LandscapeError: samples that do not divide among the ranks (every rank must run the same number of
            batches through the sharded model, whose forward is a collective).
    """
    n = len(data)
    if n % world:
        raise LandscapeError(f"a sharded model evaluates the {n:,} samples in equal shares on {world} ranks; pass "
                             f"samples=N (--samples N) with N divisible by {world}, e.g. {n - n % world}")
    k = n // world
    part = data._map(lambda t: t[rank * k:(rank + 1) * k])
    part.population = data.population or n
    return part
