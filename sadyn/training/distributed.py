"""Data parallelism through ``torchrun``: gloo on CPU, NCCL on CUDA.

``torchrun --nproc_per_node W -m sadyn.cli.train ...`` starts W processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`setup` joins them into one process group. Every
rank draws the same global batch (same data order, same initial-state noise: the generators
are seeded identically) and trains on its contiguous shard of ``batch_size / W`` boards;
``DistributedDataParallel`` averages the gradients, so W processes take the same steps as one
process with the same global batch (up to float summation order). Rank 0 alone evaluates,
logs and writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from sadyn.errors import SadynError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def shard(self, batch: int) -> slice:
        """This rank's contiguous slice of a global batch of ``batch`` rows."""
        if batch % self.world_size:
            raise SadynError(
                f"batch_size {batch} is not divisible by the {self.world_size} processes"
            )
        size = batch // self.world_size
        return slice(self.rank * size, (self.rank + 1) * size)


def resolve_device(pref: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> this rank's GPU if CUDA is available, else CPU."""
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref == "cuda":
        pref = f"cuda:{local_rank}"
    device = torch.device(pref)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SadynError(f"device {pref!r} requested but CUDA is not available")
    return device


def setup(device_pref: str = "auto") -> DistInfo:
    """Join the torchrun process group if ``WORLD_SIZE > 1`` (else a one-process DistInfo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_pref, local)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device)


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_scalar(info: DistInfo, value: torch.Tensor) -> torch.Tensor:
    """Mean of a scalar over ranks (identity for one process)."""
    value = value.detach().clone().float()
    if info.enabled:
        dist.all_reduce(value)
        value /= info.world_size
    return value


def any_flag(info: DistInfo, flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
