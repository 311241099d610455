"""What the live view of a run shows, computed from its metrics events alone (no Streamlit, no torch).

`summarize(events)` turns the events of `metrics.jsonl` (schema and readers: core.store.events; a page
that refreshes every second reads them with events.MetricsTail) into a `LiveProgress`: where training
stands (epoch, step, fraction, images/s, ETA), the per-step loss (raw and smoothed) and the per-epoch
train/validation curves. Missing, partial or malformed events are skipped, never raised. `run_duration`
is a run's training seconds. The text the pages show for these (progress line, queue place, run list)
is made in core.views.progress.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from core.store import runs
from core.store.events import integer, number

SMOOTHING = 0.9  # EMA weight of the past in the smoothed step loss (TensorBoard-style, bias-corrected)
MAX_POINTS = 600  # the most points a step-loss chart needs; longer series are thinned evenly


def ema(values: list[float], smoothing: float = SMOOTHING) -> list[float]:
    """Exponential moving average with bias correction: the first point equals the first value."""
    out, avg = [], 0.0
    for i, value in enumerate(values, start=1):
        avg = smoothing * avg + (1 - smoothing) * value
        out.append(avg / (1 - smoothing ** i) if smoothing < 1 else value)
    return out


def thin(n: int, max_points: int = MAX_POINTS) -> list[int]:
    """Indices of at most `max_points` evenly spread points of a series of length `n`, first and last kept."""
    if n <= max_points:
        return list(range(n))
    if max_points < 2:
        return [n - 1]
    return sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})


@dataclass
class EpochRow:
    """The metrics of one finished epoch (None where the run has no such number, e.g. no validation split)."""

    epoch: int
    train_loss: float | None = None
    train_acc: float | None = None
    val_loss: float | None = None
    val_acc: float | None = None
    test_acc: float | None = None
    seconds: float | None = None


@dataclass
class LiveProgress:
    """Everything the live view shows about one run, from its events."""

    epoch: int = 0  # the epoch being trained (or the last one finished)
    epochs_done: int = 0
    total_epochs: int | None = None
    step: int = 0
    total_steps: int | None = None
    images_per_sec: float | None = None
    eta: float | None = None  # seconds left, as of the latest step event
    elapsed: float | None = None  # training seconds so far
    updated: float | None = None  # time of the latest event
    loss_steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    loss_smooth: list[float] = field(default_factory=list)
    epochs: list[EpochRow] = field(default_factory=list)
    test_acc: float | None = None
    end_state: str | None = None  # the state of the latest end event, None while training or queued
    early_stopped: bool = False

    @property
    def fraction(self) -> float:
        """Share of the optimiser steps done, 0..1 (1 once the run completed, early stop included)."""
        if self.end_state == "completed":
            return 1.0
        if not self.total_steps:
            return 0.0
        return min(1.0, max(0.0, self.step / self.total_steps))

    @property
    def best_val_acc(self) -> float | None:
        accs = [row.val_acc for row in self.epochs if row.val_acc is not None]
        return max(accs) if accs else None

    @property
    def has_data(self) -> bool:
        return bool(self.loss or self.epochs)

    def eta_now(self, now: float | None = None) -> float | None:
        """The ETA counted down to `now` from the time of the event that reported it."""
        if self.eta is None:
            return None
        if self.updated is None:
            return self.eta
        return max(0.0, self.eta - max(0.0, (now or time.time()) - self.updated))

    def loss_series(self, max_points: int = MAX_POINTS) -> tuple[list[int], list[float], list[float]]:
        """(steps, raw loss, smoothed loss), thinned to at most `max_points` for charting."""
        keep = thin(len(self.loss_steps), max_points)
        return ([self.loss_steps[i] for i in keep], [self.loss[i] for i in keep],
                [self.loss_smooth[i] for i in keep])


def summarize(events: list[dict], config: dict | None = None, smoothing: float = SMOOTHING) -> LiveProgress:
    """Fold a run's events (in file order) into what the live view shows; `config` fills gaps (epochs)."""
    p = LiveProgress(total_epochs=integer((config or {}).get("epochs")))
    step_loss: dict[int, float] = {}
    epoch_rows: dict[int, EpochRow] = {}
    for event in events:
        if not isinstance(event, dict):
            continue
        kind = event.get("type")
        p.updated = number(event.get("time")) or p.updated
        if kind == "start":
            p.total_epochs = integer(event.get("total_epochs")) or p.total_epochs
            p.total_steps = integer(event.get("total_steps")) or p.total_steps
            p.end_state, p.early_stopped, p.eta = None, False, None
        elif kind == "step":
            step = integer(event.get("step"))
            if step is None:
                continue
            p.step, p.epoch = step, integer(event.get("epoch")) or p.epoch
            p.total_steps = integer(event.get("total_steps")) or p.total_steps
            p.images_per_sec = number(event.get("images_per_sec")) or p.images_per_sec
            p.eta = number(event.get("eta"))
            p.elapsed = number(event.get("elapsed")) or p.elapsed
            loss = number(event.get("loss"))
            if loss is not None:
                step_loss[step] = loss
        elif kind == "epoch":
            epoch = integer(event.get("epoch"))
            if epoch is None:
                continue
            epoch_rows[epoch] = EpochRow(epoch, number(event.get("train_loss")), number(event.get("train_acc")),
                                         number(event.get("val_loss")), number(event.get("val_acc")),
                                         number(event.get("test_acc")), number(event.get("epoch_seconds")))
            p.epoch, p.epochs_done = epoch, epoch
            p.step = integer(event.get("step")) or p.step
            p.elapsed = number(event.get("elapsed")) or p.elapsed
            p.images_per_sec = number(event.get("images_per_sec")) or p.images_per_sec
        elif kind == "resume":
            done = integer(event.get("epoch")) or 0
            epoch_rows = {k: v for k, v in epoch_rows.items() if k <= done}  # the loss steps restart too
            p.epoch = p.epochs_done = done
        elif kind == "early_stop":
            p.early_stopped = True
        elif kind == "test":
            p.test_acc = number(event.get("test_acc"))
        elif kind == "end":
            p.end_state = event.get("state") if isinstance(event.get("state"), str) else None
            p.eta = None
    p.epochs = [epoch_rows[k] for k in sorted(epoch_rows)]
    p.epochs_done = max((row.epoch for row in p.epochs), default=0)
    p.loss_steps = sorted(step_loss)
    p.loss = [step_loss[s] for s in p.loss_steps]
    p.loss_smooth = ema(p.loss, smoothing)
    return p


def run_duration(status: dict, summary: dict | None, now: float | None = None) -> float | None:
    """Training seconds of a finished run (from its summary), or wall seconds since it started while it runs."""
    seconds = number((summary or {}).get("train_seconds"))
    if seconds is not None:
        return seconds
    started = number(status.get("started"))
    if started is None:
        return None
    end = number(status.get("finished")) if status.get("state") not in runs.ACTIVE_STATES else None
    return max(0.0, (end or now or time.time()) - started)
