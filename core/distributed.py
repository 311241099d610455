"""torchrun support: DistributedDataParallel over gloo (CPU) or nccl (CUDA); a no-op context otherwise.

Under `torchrun --nproc_per_node N -m core.train ...` every rank builds the same seeded permutation and
takes its 1/N shard of every global batch (`batch_size` is the global batch, `lr` applies to it as in a
single process); DDP averages the gradients, so a step equals a single-process step on the whole batch
(batch-norm statistics are per rank). Rank 0 alone writes the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    """Where this process stands in a (possibly one-process) training job."""

    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None  # None: let the config decide

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model to train: DDP-wrapped when distributed."""
        if not self.active:
            return model
        ids = [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any rank (keeps stop/divergence decisions in step)."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (a copy; the input is left alone)."""
        if not self.active:
            return tensor
        t = tensor.detach().clone().to(self._comm_device())
        dist.all_reduce(t)
        return t

    def broadcast_object(self, obj):
        """Rank 0's `obj` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.active:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group (after a final barrier)."""
        if self.active and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def _comm_device(self) -> torch.device:
        return self.device if self.device is not None and self.device.type == "cuda" else torch.device("cpu")


def setup_distributed(config=None) -> DistContext:
    """Join the torchrun job described by the environment (RANK, WORLD_SIZE, ...), if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = torch.cuda.is_available() and (config is None or config.device in ("auto", "cuda"))
    device = torch.device("cuda", local_rank) if want_cuda else torch.device("cpu")
    if want_cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    return DistContext(rank, world_size, device)
