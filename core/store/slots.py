"""Training slots: at most N runs train at once; later starts wait in a first-come queue.

Each slot is an exclusive lock on a file under <runs root>/.slots; the OS releases it when its process
ends, however it ends, so a crashed run never holds a slot.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from core.store import guest, runs

MAX_CONCURRENT_ENV = "MNIST_STUDIO_MAX_CONCURRENT"
POLL_SECONDS = 0.25


def max_concurrent() -> int:
    """How many runs may train at once: $MNIST_STUDIO_MAX_CONCURRENT, else 1 (a 2-core machine)."""
    try:
        return max(1, int(os.environ.get(MAX_CONCURRENT_ENV, "1")))
    except ValueError:
        return 1


def _queue_key(info: runs.RunInfo) -> tuple[float, str]:
    """Queue order: when the run was queued (a resumed run queues anew), else when it was created."""
    return float(info.status.get("queued_at") or info.created), info.name


def queue_state(run_path: Path) -> tuple[int, bool]:
    """(how many live queued runs were queued before this one and may start, whether this run is held back).

    A guest visitor trains one run at a time: a queued run whose visitor (core.store.guest) already has one
    running is held back, and the runs queued after it go ahead of it.
    """
    me = runs.read_run(run_path)
    others = [other for other in runs.scan(Path(run_path).parent) if other.path != me.path]
    busy = {guest.ownership(o.path).get("visitor") for o in others if o.state == "running"} - {None}
    ahead = sum(1 for o in others if o.state == "queued" and _queue_key(o) < _queue_key(me)
                and guest.ownership(o.path).get("visitor") not in busy)
    return ahead, guest.ownership(me.path).get("visitor") in busy


def queue_position(run_path: Path) -> int:
    """How many live queued runs that may start were queued before this one (0 = next to start)."""
    return queue_state(run_path)[0]


def _try_lock(slot_dir: Path, count: int):
    for i in range(count):
        handle = open(slot_dir / f"slot-{i}.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            handle.close()
    return None


def wait_for_slot(writer: runs.RunWriter, count: int | None = None, poll: float = POLL_SECONDS):
    """Block until this run holds a training slot; returns the held lock (keep it open), or None if stopped.

    Only the first run in the queue tries to take a slot, so runs start in the order they were queued (a guest
    visitor's second run waits while their first trains).
    """
    count = count or max_concurrent()
    slot_dir = writer.path.parent / ".slots"
    slot_dir.mkdir(exist_ok=True)
    status = runs.read_json(writer.path / "status.json") or {}
    if status.get("state") != "queued" or not status.get("queued_at"):  # e.g. `--resume --queue` from a shell
        writer.set_status("queued", queued_at=time.time())
    last_position = None
    while True:
        if runs.stop_requested(writer.path):
            return None
        position, held_back = queue_state(writer.path)
        if position != last_position:
            writer.set_status("queued", queue_position=position, max_concurrent=count)
            last_position = position
        if position == 0 and not held_back:
            handle = _try_lock(slot_dir, count)
            if handle is not None:
                return handle
        time.sleep(poll)
