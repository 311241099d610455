"""Where a training process reports: one event sink, so the loop never asks "is there a writer?".

`RunSink` (rank 0) writes the run directory: metrics events (built by core.store.events.make), status,
checkpoints, test outputs and summary, and passes every event to its listeners (the command line's
progress bar). `NullSink` (every other rank, and processes that write no run) does nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from core.store import atomic, events, guest, runs
from core.store.checkpoint import save_checkpoint

Listener = Callable[[dict], None]


class NullSink:
    """A sink that writes nothing: the other ranks of a distributed job."""

    writer: runs.RunWriter | None = None
    path: Path | None = None

    def emit(self, kind: str, notify: bool = True, **fields) -> dict:
        """Build the event (so a wrong field fails on every rank alike) and drop it."""
        return events.make(kind, **fields)

    def notify(self, event: dict) -> None:
        """Tell the listeners an event that was emitted with notify=False."""

    def set_status(self, state: str, **fields) -> None:
        pass

    def save_checkpoint(self, name: str, model: torch.nn.Module, payload: Callable[[], dict]) -> None:
        """Save `model` with the metadata `payload()` returns (called only by a sink that writes)."""

    def write_test_outputs(self, probs: np.ndarray, labels: np.ndarray, summary: dict) -> None:
        pass

    def stop_requested(self) -> bool:
        return False

    def start_heartbeat(self) -> None:
        pass

    def truncate_metrics(self, keep_through_epoch: int) -> None:
        pass

    def close(self) -> None:
        pass


class RunSink(NullSink):
    """Rank 0's sink: writes the run directory through `writer` and tells `listeners` every event."""

    def __init__(self, writer: runs.RunWriter, listeners: Iterable[Listener] = ()):
        self.writer, self.path = writer, writer.path
        self.time_limit = guest.time_limit(self.path)  # a guest run's seconds per start (owner.json), else None
        self._first_check: float | None = None
        self.listeners = [listener for listener in listeners if listener is not None]

    def emit(self, kind: str, notify: bool = True, **fields) -> dict:
        event = super().emit(kind, **fields)
        self.writer.log(event)
        if notify:
            self.notify(event)
        return event

    def notify(self, event: dict) -> None:
        for listener in self.listeners:
            listener(event)

    def set_status(self, state: str, **fields) -> None:
        self.writer.set_status(state, **fields)

    def save_checkpoint(self, name: str, model: torch.nn.Module, payload: Callable[[], dict]) -> None:
        save_checkpoint(self.path / name, model, **payload())

    def write_test_outputs(self, probs: np.ndarray, labels: np.ndarray, summary: dict) -> None:
        """test_outputs.npz (float16 probabilities, uint8 labels) and summary.json, each written atomically."""
        atomic.write_npz(self.path / "test_outputs.npz", probs=probs.astype(np.float16), labels=labels.astype(np.uint8))
        atomic.write_json(self.path / "summary.json", summary)

    def stop_requested(self) -> bool:
        """A stop was asked for, or a guest run has trained for its time limit (counted from the first check)."""
        if self.time_limit is not None:
            now = time.monotonic()
            self._first_check = self._first_check or now
            if now - self._first_check > self.time_limit:
                return True
        return runs.stop_requested(self.path)

    def start_heartbeat(self) -> None:
        self.writer.start_heartbeat()

    def truncate_metrics(self, keep_through_epoch: int) -> None:
        self.writer.truncate_metrics(keep_through_epoch)

    def close(self) -> None:
        """Stop the heartbeat and forget a stop request that has been served."""
        self.writer.stop_heartbeat()
        runs.clear_stop_request(self.path)
