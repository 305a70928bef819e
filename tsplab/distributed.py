"""Process-group helpers for ``torchrun`` (one process per device; several nodes through torchrun's
own rendezvous, no launcher of ours).

Without torchrun's environment (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``) everything runs as a single
process: rank 0 of 1, no process group. NCCL is the backend on CUDA, gloo on the CPU.
"""
from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its node,
    the ``device`` it computes on, and ``is_main`` (rank 0: the only process that writes files)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def rank_and_world_size() -> tuple[int, int]:
    """``(rank, world_size)`` from an initialised process group, else from torchrun's environment
    variables, else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_distributed(backend: str | None = None, device: str | None = None) -> DistContext:
    """Join torchrun's process group when launched by torchrun (``WORLD_SIZE`` > 1), else return a
    single-process context.

    ``backend`` defaults to NCCL when CUDA is available and gloo otherwise. ``device`` overrides the
    device ("cpu" forces CPU training even on a GPU machine, with gloo). Calling it again once the
    group exists returns the same context."""
    rank, world_size = rank_and_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device(device or "cpu")
    if world_size > 1 and not dist.is_initialized():
        if backend is None:
            backend = "nccl" if use_cuda else "gloo"
        # torchrun exports MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE, which env:// reads.
        kwargs = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, init_method="env://", **kwargs)
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup() -> None:
    """Destroy the process group if one exists (safe to call in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj, src: int = 0):
    """``obj`` from rank ``src`` on every process (identity in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]
    return obj


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` in place over all processes and return it (identity in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
