"""A training run's lifecycle around the loop: status, queue slot, resume, and how it ends.

`run(config, run_dir)` is what `python -m core.train` calls in every process of a job: rank 0 writes the
run directory through a RunSink (the others get a NullSink), waits for a training slot when queued,
restores `last.pt` on resume, trains (core.training.loop.Trainer), and records how the run ended:
completed, stopped (a stop request), diverged (a NaN loss, with a hint) or failed (any other error).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from core.data.datasets import load_split
from core.inference.engine import resolve_device
from core.store import runs
from core.store.checkpoint import load_checkpoint
from core.store.slots import wait_for_slot
from core.training.config import TrainConfig
from core.training.distributed import setup_distributed
from core.training.loop import Diverged, StopRequested, Trainer
from core.training.sink import Listener, NullSink, RunSink


def run(config: TrainConfig, run_dir: Path | None, *, resume: bool = False, queue: bool = False,
        progress_bar: Listener | None = None) -> tuple[str, dict | None]:
    """Train `config` into `run_dir` (rank 0 writes; others pass None); returns (final state, summary)."""
    dist = setup_distributed(config)
    if dist.is_main and run_dir is None:
        raise ValueError("rank 0 needs a run directory")
    # one progress bar per job, not one per rank
    sink = RunSink(runs.RunWriter(run_dir), [progress_bar]) if dist.is_main else NullSink()
    if config.threads:
        torch.set_num_threads(config.threads)
    slot, failed = None, False
    try:
        sink.start_heartbeat()
        if queue:  # rank 0 waits for a slot; the other ranks wait for rank 0
            slot = dist.wait_for_main(lambda: wait_for_slot(sink.writer))
            if dist.any_rank(dist.is_main and slot is None):
                sink.emit("end", state="stopped")
                sink.set_status("stopped", error=None, hint="Stopped while queued; Resume starts it.")
                return "stopped", None
        sink.set_status("running", started=time.time(), error=None, hint=None, queue_position=None,
                        device=str(dist.device or resolve_device(config.device)), world_size=dist.world_size)
        dist.local_main_first(lambda: load_split(config.dataset, train=True))  # one download per machine
        trainer = Trainer(config, sink, dist)
        last = Path(run_dir) / "last.pt" if resume and run_dir is not None else None
        payload = dist.from_main(lambda: load_checkpoint(last) if last and last.is_file() else None)
        if payload is not None:  # rank 0 read it: on several machines only its host has the run directory
            trainer.restore(payload)
            sink.truncate_metrics(trainer.state.epoch)
            sink.emit("resume", epoch=trainer.state.epoch)
        try:
            trainer.fit()
            dist.dump_weights(trainer.model)  # tests only, when $MNIST_STUDIO_DUMP_WEIGHTS is set
        except StopRequested:
            summary = trainer.evaluate_test() if trainer.state.epoch and dist.is_main else None
            sink.emit("end", state="stopped", epoch=trainer.state.epoch)
            sink.set_status("stopped", error=None,
                            hint=f"Stopped after {trainer.state.epoch} of {config.epochs} epochs; "
                                 "Resume continues from the last completed epoch.")
            return "stopped", summary
        except Diverged as err:
            sink.emit("end", state="diverged", epoch=trainer.state.epoch)
            sink.set_status("diverged", error=str(err),
                            hint=f"Lower the learning rate (it was {config.lr:g}; try {config.lr / 10:g}), "
                                 "use a warm-up schedule such as onecycle, or a smaller batch.")
            return "diverged", None
        summary = trainer.evaluate_test() if dist.is_main else None
        sink.emit("end", state="completed", epoch=trainer.state.epoch)
        sink.set_status("completed", error=None, hint=None)
        return "completed", summary
    except BaseException as err:
        failed = True
        message = "interrupted (Ctrl-C)" if isinstance(err, KeyboardInterrupt) else f"{type(err).__name__}: {err}"
        sink.set_status("failed", error=message, hint="See the error above; fix it and Resume or start anew.")
        raise
    finally:
        sink.close()
        if slot is not None:
            slot.close()
        dist.close(clean=not failed)
