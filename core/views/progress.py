"""What the Train and Experiments pages say about runs in progress: the progress line, a queued run's
place in line and the run list (plain text and table rows from core.store.progress's data, no Streamlit).
"""

from __future__ import annotations

import time

from core.store import runs
from core.store.events import integer, number
from core.store.progress import LiveProgress, run_duration
from core.views.formats import format_duration


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def progress_text(p: LiveProgress, state: str) -> str:
    """The progress bar's line: 'epoch 2/5 · step 300/700 · 1,234 images/s · ETA 45s'."""
    epoch = f"epoch {p.epoch}/{p.total_epochs or '?'}" if state == "running" else \
        f"{p.epochs_done}/{p.total_epochs or '?'} epochs done"
    parts = [epoch, f"step {p.step:,}/{p.total_steps or 0:,}"]
    if p.images_per_sec:
        parts.append(f"{p.images_per_sec:,.0f} images/s")
    if state == "running" and p.eta_now() is not None:
        parts.append(f"ETA {format_duration(p.eta_now())}")
    return " · ".join(parts)


def status_text(status: dict) -> str:
    """A run's state, with its place for a queued run: 'queued (2nd in line)'."""
    state = status.get("state", "failed")
    position = integer(status.get("queue_position"))
    if state == "queued" and position is not None:
        return f"queued ({ordinal(position + 1)} in line)"
    return state


def queue_text(status: dict, slots: int) -> str:
    """What a queued run is waiting for, for the live view."""
    position = integer(status.get("queue_position"))
    slots = integer(status.get("max_concurrent")) or slots
    if position is None:
        return "Queued: its training process is starting; it trains as soon as a slot is free."
    ahead = "next to start" if position == 0 else f"{position} run{'s' if position > 1 else ''} ahead"
    return (f"Queued, {ordinal(position + 1)} in line ({ahead}): at most {slots} run{'s' if slots > 1 else ''} "
            "train at once, and this one starts when a slot is free.")


def run_rows(infos: list[runs.RunInfo], now: float | None = None) -> list[dict]:
    """One row per run for the run list (in the order given: newest first from runs.list_runs)."""
    rows = []
    for info in infos:
        summary, status, config = info.summary or {}, info.status, info.config or {}
        done = integer(status.get("epoch")) or integer(summary.get("epochs"))
        total = integer(config.get("epochs"))
        rows.append({
            "run": info.label, "dataset": info.dataset, "model": info.model, "status": status_text(status),
            "epochs": f"{done or 0}/{total}" if total else "",
            "best val acc": number(summary.get("best_val_acc")),
            "test acc": number(summary.get("test_acc")),
            "duration": format_duration(run_duration(status, info.summary, now)),
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created)),
        })
    return rows
