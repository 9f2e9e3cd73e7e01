"""Scale-out over ranks started by ``torchrun`` (one GPU per rank, or CPU processes with gloo).

The grid's pending points are split into blocks dealt round-robin to the ranks; after every round the results
are gathered on rank 0, which alone holds the surface file (and its lock) and writes them, so a killed job
loses at most one round and resumes like a single-process run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist

from landscape.errors import LandscapeError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (identity when single-process)."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, fn: Callable[[], Any], share: Callable[[Any], Any] | None = None) -> Any:
        """Run ``fn`` on rank 0 alone; every other rank gets ``share(result)`` (default: the result), or rank 0's
        :class:`LandscapeError`, so a bad input stops every rank with the same one-line message, not a hang.
        """
        msg = None
        if self.is_main:
            try:
                result = fn()
            except LandscapeError as e:
                self.broadcast(("error", str(e)))
                raise
            msg = ("ok", share(result) if share else result)
        msg = self.broadcast(msg)
        if msg[0] == "error":
            raise LandscapeError(msg[1])
        return result if self.is_main else msg[1]

    def max(self, value: int) -> int:
        """The largest of every rank's ``value`` on every rank (a collective: all ranks must call it)."""
        if self.world == 1:
            return int(value)
        t = torch.tensor([int(value)], dtype=torch.int64, device=self.device)  # NCCL reduces on the GPU only
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def gather(self, obj: Any) -> list | None:
        """Every rank's ``obj`` as a list on rank 0 (``None`` elsewhere)."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out


def setup(device: torch.device) -> Dist:
    """Join the ``torchrun`` job described by the environment, if any.

    With ``WORLD_SIZE > 1``: NCCL and ``cuda:LOCAL_RANK`` when ``device`` is CUDA, gloo on the CPU otherwise.
    Multi-node works through torchrun's standard rendezvous (``--nnodes``, ``--rdzv-endpoint``).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(0, 1, device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise LandscapeError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPUs on this node; "
                                 "use --nproc_per_node <= the number of GPUs")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, device)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
