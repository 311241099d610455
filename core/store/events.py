"""The `metrics.jsonl` event schema: what a training run logs, how events are built, and how they are read.

A run's `metrics.jsonl` holds one JSON object per line, each with a `type` (a key of KINDS), the `time` it
was written (added by core.store.runs.RunWriter.log) and the fields KINDS declares for its type. The
training loop builds every event with `make`; every reader (the Train live view, Evaluate and Compare
curves, benchmarks) reads them with `read_events` or `MetricsTail` and takes values with `number` /
`integer`, so torn lines, junk lines and missing or non-finite values are skipped, never raised.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

METRICS_FILE = "metrics.jsonl"


@dataclass(frozen=True)
class Kind:
    """The fields one type of event carries (besides `type` and `time`)."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


KINDS = {
    # training (re)starts: the plan of the whole run
    "start": Kind(("epoch", "total_epochs", "steps_per_epoch", "total_steps", "train_size", "val_size", "device",
                   "world_size", "params")),
    # at most a few per second while training: the latest step's loss, speed and time left (eta, seconds)
    "step": Kind(("epoch", "step", "loss", "lr", "images_per_sec", "elapsed", "eta", "total_steps")),
    # an epoch finished; val_* are None without a validation split, test_acc only under --monitor-test
    "epoch": Kind(("epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "val_confusion", "lr",
                   "epoch_seconds", "elapsed", "images_per_sec"), ("test_acc",)),
    # patience ran out after `epoch`
    "early_stop": Kind(("epoch", "best_epoch")),
    # a stopped run continues after `epoch` (later events of that run's earlier life were dropped)
    "resume": Kind(("epoch",)),
    # the best weights scored on the official test set
    "test": Kind(("epoch", "test_acc", "macro_f1")),
    # the run ended: completed, stopped or diverged (no epoch when it was stopped while queued)
    "end": Kind(("state",), ("epoch",)),
}


def make(kind: str, **fields) -> dict:
    """An event of type `kind` with exactly the fields KINDS declares (a ValueError names any mismatch)."""
    if kind not in KINDS:
        raise ValueError(f"unknown event type {kind!r}; known: {', '.join(KINDS)}")
    spec = KINDS[kind]
    missing = [f for f in spec.required if f not in fields]
    unknown = [f for f in fields if f not in spec.required and f not in spec.optional]
    if missing or unknown:
        raise ValueError(f"{kind} event: missing {missing}, unknown {unknown}")
    return {"type": kind, **fields}


def number(value) -> float | None:
    """A JSON value (an event field, a summary entry) as a finite float, or None (booleans, text, NaN too)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def integer(value) -> int | None:
    """A JSON value as an int (truncated), or None when it is not a finite number."""
    value = number(value)
    return int(value) if value is not None else None


def parse(line: bytes | str) -> dict | None:
    """One line of metrics.jsonl as an event, or None for a blank, torn or junk line."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("type"), str) else None


def read_events(run_dir: Path) -> tuple[list[dict], int]:
    """(events, number of unreadable lines) of a run's metrics.jsonl; a missing file has no events."""
    events, bad = [], 0
    try:
        with open(Path(run_dir) / METRICS_FILE, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    continue
                event = parse(line)
                if event is None:
                    bad += 1
                else:
                    events.append(event)
    except OSError:
        pass
    return events, bad


def epoch_events(events) -> dict[int, dict]:
    """The last `epoch` event of each epoch (a resumed run may repeat one), by epoch number >= 1, in order."""
    by_epoch: dict[int, dict] = {}
    for event in events:
        epoch = event.get("epoch") if isinstance(event, dict) else None
        if event.get("type") == "epoch" and isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 1:
            by_epoch[epoch] = event
    return dict(sorted(by_epoch.items()))


class MetricsTail:
    """Reads a run's growing metrics.jsonl incrementally: each `read()` parses only the lines added since.

    A file that shrank or was replaced (resume rewrites it) is read again from the start; a last line
    still being written is kept back until it is complete.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / METRICS_FILE
        self._reset()

    def _reset(self) -> None:
        self.events: list[dict] = []
        self.bad_lines = 0
        self._offset = 0
        self._identity: tuple[int, int] | None = None
        self._pending = b""

    def read(self) -> list[dict]:
        """All events so far (the same list object grows between calls)."""
        try:
            stat = os.stat(self.path)
        except OSError:
            self._reset()
            return self.events
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset:
            self._reset()
            self._identity = identity
        if stat.st_size == self._offset:
            return self.events
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read(stat.st_size - self._offset)
        except OSError:
            return self.events
        self._offset += len(data)
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            event = parse(line)
            if event is None:
                self.bad_lines += bool(line.strip())
            else:
                self.events.append(event)
        return self.events
