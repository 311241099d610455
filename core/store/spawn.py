"""Start a background process that outlives the page or command that started it."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from core.store.paths import REPO_ROOT


def spawn_detached(command: list[str], log_path: Path, **popen_args) -> int:
    """Run `command` from the repository root in a session of its own, output appended to `log_path`; its pid.

    A thread reaps it when it ends, so a long-lived server collects no zombies."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, **popen_args)
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    return proc.pid
