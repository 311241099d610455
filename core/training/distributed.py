"""torchrun support: DistributedDataParallel over gloo (CPU) or nccl (CUDA); a no-op context otherwise.

    torchrun --standalone --nproc_per_node 4 -m core.train --preset fast --name big   # 4 GPUs (or CPU processes)
    torchrun --nnodes 2 --node_rank R --nproc_per_node 4 --master_addr HOST0 --master_port 29500 \\
             -m core.train --preset fast --name big     # on each of 2 machines (R = 0, 1): node 0 holds rank 0
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv_id big --rdzv_backend c10d --rdzv_endpoint HOST0:29500 \\
             -m core.train --preset fast --name big     # c10d rendezvous: rank 0 lands on one of the machines

Batch size and learning rate: `batch_size` is the *global* batch of one optimiser step. Every rank builds
the same seeded permutation and takes its 1/N shard of every global batch (`core.data.datasets.shuffled_batches`),
so each rank computes on about batch_size / world_size images and the ranks together see exactly the
batches of a single-process run. DDP averages the gradients (shards of unequal size are weighted by their
size), so one step equals a single-process step on the whole batch and `lr` means what it means in one
process: it is not scaled with the number of processes. Run with more processes at the same settings and
you get the same training, faster; raise `batch_size` (and `lr` with it) yourself if you want bigger steps.
The exception is batch norm: its statistics come from each rank's shard (and its running averages from
rank 0), so models with batch norm match a single process closely but not exactly.

Who does what: rank 0 alone writes the run directory (metrics, checkpoints, status, test outputs); it
picks the run name and broadcasts it, reads config.json and last.pt for `--start-run`/`--resume` and hands
them to the others, so on several machines only rank 0's host needs the run directory (give `--name` to
know what it will be called; status.json's `host` says which machine that is).
Every rank needs the dataset (the first process of each machine downloads it first). Stop requests and
divergence are all-reduced, so every rank leaves the loop at the same step. With `--queue`, rank 0 waits
for a training slot while the others poll it once a second (no collective timeout however long the wait).

The device is chosen per rank: `auto` or `cuda` takes GPU LOCAL_RANK when CUDA is available (one process
per GPU), else the CPU; then the data lives on that GPU and `precision=auto` / `channels_last` give bf16
autocast and channels-last conv nets, as in one process. The process group is `cpu:gloo,cuda:nccl` on
CUDA machines (gradients over NCCL, small control messages over gloo) and `gloo` elsewhere. The device
used is recorded in the run's start event, status.json and summary.json (with `world_size`); config.json
keeps the setting asked for (`auto`), so a run can be resumed on another machine.

Tests only: `$MNIST_STUDIO_DUMP_WEIGHTS=DIR` makes every rank save its final weights to DIR/rank{R}.pt.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

# Tests only: when set to a folder, every rank saves its final weights there as rank{R}.pt (a plain
# state_dict on the CPU), so a test can check that all ranks ended with identical weights.
DUMP_WEIGHTS_ENV = "MNIST_STUDIO_DUMP_WEIGHTS"
POLL_SECONDS = 1.0  # how often waiting ranks ask whether rank 0 is done (see wait_for_main)


class RankZeroError(RuntimeError):
    """Rank 0 failed at something it does for every rank; it reports the error itself."""


@dataclass
class DistContext:
    """Where this process stands in a (possibly one-process) training job."""

    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None  # None: let the config decide
    local_rank: int = 0
    owner: bool = False  # this context started the process group, so close() ends it

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

    def from_main(self, fn):
        """fn() computed on rank 0 alone and handed to every rank (e.g. a file only rank 0's host has).

        When fn raises on rank 0, rank 0 raises it and the other ranks raise RankZeroError.
        """
        if not self.active:
            return fn()
        payload = None
        if self.is_main:
            try:
                payload = ("ok", fn())
            except Exception as err:
                self.broadcast_object(("error", f"{type(err).__name__}: {err}"))
                raise
        kind, value = self.broadcast_object(payload)
        if kind == "error":
            raise RankZeroError(f"rank 0 failed: {value}")
        return value

    def wait_for_main(self, fn, poll: float = POLL_SECONDS):
        """fn() on rank 0 (which may block for hours, e.g. waiting for a training slot) while the other ranks
        wait for it; returns fn's result on rank 0 and None elsewhere.

        The ranks meet in a tiny all-reduce every `poll` seconds instead of one collective that would time out.
        """
        if not self.active:
            return fn()
        box: dict = {}
        if self.is_main:
            def target():
                try:
                    box["result"] = fn()
                except BaseException as err:  # re-raised below, in rank 0's main thread
                    box["error"] = err
            thread = threading.Thread(target=target, name="wait-for-main", daemon=True)
            thread.start()
            while not self.any_rank(not thread.is_alive()):
                thread.join(poll)
            if "error" in box:
                raise box["error"]
            return box["result"]
        while not self.any_rank(False):
            time.sleep(poll)
        return None

    def local_main_first(self, fn) -> None:
        """Call fn() on the first process of each machine, then on the others (one download per machine)."""
        if self.local_rank == 0:
            fn()
        self.barrier()
        if self.local_rank != 0:
            fn()

    def dump_weights(self, model: nn.Module) -> None:
        """Tests only: save this rank's weights to $MNIST_STUDIO_DUMP_WEIGHTS/rank{R}.pt when that is set."""
        folder = os.environ.get(DUMP_WEIGHTS_ENV)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            torch.save(state, Path(folder) / f"rank{self.rank}.pt")

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.active:
            dist.barrier()

    def close(self, clean: bool = True) -> None:
        """Leave the process group if this context started it (after a final barrier when `clean`).

        After an error there is no barrier: the other ranks may be stuck in a collective, and torchrun ends
        them when this process exits.
        """
        if self.active and self.owner and dist.is_initialized():
            if clean:
                dist.barrier()
            dist.destroy_process_group()

    def _comm_device(self) -> torch.device:
        return self.device if self.device is not None and self.device.type == "cuda" else torch.device("cpu")


def rank_device(name: str, local_rank: int) -> torch.device:
    """The device of the process with `local_rank` on its machine, for the config's `device` setting."""
    if name == "mps":
        raise ValueError("multi-process training runs on CUDA GPUs or on CPUs, not on Apple MPS; use --device cpu")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is available")
    if local_rank >= torch.cuda.device_count():
        raise RuntimeError(f"process {local_rank} of this machine has no GPU of its own: there are "
                           f"{torch.cuda.device_count()}; start at most that many (--nproc_per_node)")
    return torch.device("cuda", local_rank)


def setup_distributed(config=None) -> DistContext:
    """Join the torchrun job described by the environment (RANK, WORLD_SIZE, ...), if any.

    The first call starts the process group (that context's close() ends it); later calls only describe
    this process. The device is the one for `config`'s setting; None without a config (rank 0's config may
    not be known yet), and such a context communicates on the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = rank_device(config.device, local_rank) if config is not None else None
    if device is not None and device.type == "cuda":
        torch.cuda.set_device(device)
    owner = not dist.is_initialized()
    if owner:
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return DistContext(rank, world_size, device, local_rank, owner)
