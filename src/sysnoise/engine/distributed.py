"""Scale-out with torch.distributed: ranks take whole chunks round-robin and rank 0 gathers them.

Chunks are the unit of work everywhere (resume, commit, sharding) and batches never straddle a
chunk, so every sample is forwarded in exactly the batch it would be in a one-process run: the
gathered outputs are bit-identical to a single-process run, not merely close.

Started by torchrun (which sets RANK, WORLD_SIZE, MASTER_ADDR, ...); gloo on CPU, nccl on GPU.
"""

from __future__ import annotations

import os


def rank_and_world() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        import torch

        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def local_device(device: str) -> str:
    """cuda -> cuda:LOCAL_RANK under torchrun, so ranks on one node use different GPUs."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return device


def gather_to_rank0(results: dict) -> dict | None:
    """Merge every rank's {chunk index: arrays} on rank 0; other ranks get None."""
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    gathered = [None] * world if rank == 0 else None
    dist.gather_object(results, gathered, dst=0)
    if rank != 0:
        return None
    merged: dict = {}
    for part in gathered:
        merged.update(part)
    return merged


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
