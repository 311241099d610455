"""Training slots: at most N runs train at once; later starts wait in a first-come queue.

Each slot is an exclusive lock on a file under <runs root>/.slots; the OS releases it when its process
ends, however it ends, so a crashed run never holds a slot.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from core.store import runs

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


def queue_position(run_path: Path) -> int:
    """How many live queued runs were queued before this one (0 = next to start)."""
    me = runs.read_run(run_path)
    ahead = 0
    for other in runs.scan(Path(run_path).parent):
        if other.path != me.path and other.state == "queued" and _queue_key(other) < _queue_key(me):
            ahead += 1
    return ahead


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

    Only the first run in the queue tries to take a slot, so runs start in the order they were queued.
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
        position = queue_position(writer.path)
        if position != last_position:
            writer.set_status("queued", queue_position=position, max_concurrent=count)
            last_position = position
        if position == 0:
            handle = _try_lock(slot_dir, count)
            if handle is not None:
                return handle
        time.sleep(poll)
