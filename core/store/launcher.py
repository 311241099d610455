"""Start, stop, resume and delete runs from the app: each run trains in its own process, the same CLI a user calls.

`start_run` prepares the run directory (state `queued`) and spawns
`python -m core.train --start RUN_DIR --queue --quiet` (through `torch.distributed.run` for several
processes) in a new session, so a Streamlit rerun, a closed tab or a restarted server never interrupts it.
The child waits for a training slot (core.slots, $MNIST_STUDIO_MAX_CONCURRENT, default 1) and writes its
queue position into status.json meanwhile. Its output goes to RUN_DIR/train.log.

Every action takes an `actor` (core.store.guest.Actor): None is the single-user default, who may do
everything; in guest mode a visitor trains within the budget (core.hosting) and may stop, resume or delete
only the runs they started, which the checks here enforce whatever a page offers.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path

from core import hosting
from core.models.cost import model_problems
from core.store import guest, runs
from core.store.paths import runs_root
from core.store.spawn import spawn_detached
from core.training.config import ConfigError, TrainConfig

LOG_NAME = "train.log"
MAX_PROCESSES = 64


def train_command(run_dir: Path, resume: bool = False, nproc: int = 1) -> list[str]:
    """The command line that trains (or resumes) `run_dir`, waiting for a slot, without a progress bar."""
    if not isinstance(nproc, int) or isinstance(nproc, bool) or not 1 <= nproc <= MAX_PROCESSES:
        raise ValueError(f"processes must be a whole number from 1 to {MAX_PROCESSES}, got {nproc!r}")
    if nproc == 1:
        return [sys.executable, "-m", "core.train", "--resume" if resume else "--start", str(run_dir), "--queue",
                "--quiet"]
    # torchrun would take a bare --start for its own --start-method, hence the alias --start-run
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "core.train", "--resume" if resume else "--start-run", str(run_dir), "--queue", "--quiet"]


def model_kwargs_problems(config: TrainConfig) -> list[str]:
    """Messages for model arguments the chosen architecture does not take, cannot be built with, or that make it
    bigger than the bounds (TrainConfig cannot know them); counted on the meta device, so no weights are made."""
    return model_problems(config.model, config.model_kwargs)


def _spawn(path: Path, resume: bool, nproc: int) -> int:
    """Start the training process of `path` detached from ours; returns its pid and reaps it when it ends."""
    command = train_command(path, resume, nproc)
    with open(path / LOG_NAME, "ab") as log:
        log.write(f"\n$ {' '.join(command)}  # {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    return spawn_detached(command, path / LOG_NAME)


def _launch(path: Path, resume: bool, nproc: int) -> None:
    """Mark the run queued, spawn its process and record its pid; if it cannot start, the run is failed."""
    runs.RunWriter(path).set_status("queued", queued_at=time.time(), nproc=nproc, error=None, hint=None,
                                    queue_position=None)
    try:
        pid = _spawn(path, resume, nproc)
    except OSError as err:
        runs.RunWriter(path).set_status("failed", error=f"the training process could not start: {err}",
                                        hint="Check the Python environment, then Resume.")
        raise
    runs.RunWriter(path).set_status("queued", pid=pid)  # a fresh writer re-reads what the child may have written


@contextlib.contextmanager
def _start_lock(root: Path):
    """Serialise the check-then-create of starts (two tabs pressing Start at once see each other's runs): a lock on
    the runs folder itself, so no file is written for it."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def start_run(config: TrainConfig, name: str | None = None, nproc: int = 1,
              actor: guest.Actor | None = None) -> Path:
    """Create a run for `config` (named `name`, or time-dataset-model) and start training it; returns its path.

    Raises ConfigError for invalid settings or a run beyond the limits (the queue bound; in guest mode the
    visitor's budget), RunNameError for a bad name, FileExistsError for a taken one.
    """
    config.validate()
    problems = model_kwargs_problems(config)
    if problems:
        raise ConfigError(problems)
    train_command(Path("."), nproc=nproc)  # refuse a bad process count before creating anything
    root = runs_root()
    limited = hosting.is_limited(actor)
    with _start_lock(root):
        problems = [p for p in [hosting.queue_problem(root)] if p]
        if limited:
            problems += hosting.guest_start_problems(actor, config, nproc, root)
        if problems:
            raise ConfigError(problems)
        path = runs.run_dir_for(name.strip() if name and name.strip() else
                                runs.new_run_name(config.dataset, config.model, root), root)
        runs.RunWriter.create(path, config.to_dict(), state="queued")
        if limited:
            guest.record_owner(path, actor, hosting.GUEST_SECONDS.value())
    if limited:
        guest.enforce_disk_cap(root, hosting.GUEST_DISK_MB.value() * 2**20)
    _launch(path, resume=False, nproc=nproc)
    return path


def _authorize(path: Path, actor: guest.Actor | None) -> None:
    """Refuse (NotYourRunError) a visitor's action on a run they did not start; a shipped run is read-only."""
    runs.ensure_writable(path)
    if actor is not None and hosting.guest_mode():
        guest.check(actor, path)


def can_resume(info: runs.RunInfo) -> str | None:
    """Why `info` cannot be resumed, or None when it can."""
    if info.source != "user":
        return "shipped pretrained runs are read-only"
    if info.config is None:
        return "its config.json is missing"
    if info.state in runs.ACTIVE_STATES:
        return f"it is still {info.state}"
    if info.state == "completed":
        return "it has completed"
    if info.state == "pruned":
        return "its experiment pruned it (start a new run to train these settings longer)"
    return None


def stop_run(path: Path, actor: guest.Actor | None = None) -> bool:
    """Ask a queued or running run to stop (it saves its progress and ends as `stopped`); False if not active,
    ReadOnlyRunError for a shipped pretrained run, NotYourRunError for another visitor's run."""
    _authorize(path, actor)
    if runs.read_run(Path(path)).state not in runs.ACTIVE_STATES:
        return False
    runs.request_stop(Path(path))
    return True


def resume_run(path: Path, nproc: int | None = None, actor: guest.Actor | None = None) -> None:
    """Continue a stopped, failed, diverged or interrupted run from its last.pt (queued like a new start); a run
    that ended before its first epoch (no last.pt) is started from the beginning."""
    path = Path(path)
    info = runs.read_run(path)
    reason = can_resume(info)
    if reason:
        raise RuntimeError(f"run {path.name} cannot be resumed: {reason}")
    _authorize(path, actor)
    nproc = nproc or int(info.status.get("nproc") or 1)
    with _start_lock(path.parent):
        problems = [p for p in [hosting.queue_problem(path.parent)] if p]
        if hosting.is_limited(actor) and hosting.runs_left(actor, path.parent) <= 0:
            problems.append("you already have as many runs training or waiting as a visitor may")
        if problems:
            raise RuntimeError(f"run {path.name} cannot be resumed now: {'; '.join(problems)}")
        _resume(path, nproc)


def _resume(path: Path, nproc: int) -> None:
    resume = (path / "last.pt").is_file()
    train_command(path, resume, nproc)
    runs.clear_stop_request(path)
    _launch(path, resume=resume, nproc=nproc)


def delete_run(path: Path, actor: guest.Actor | None = None) -> None:
    """Delete a finished user run (refused for an active run, a pretrained one, another visitor's, or anything
    else)."""
    _authorize(Path(path), actor)
    runs.delete_run(Path(path))


LOG_TAIL_BYTES = 64 * 1024  # the most of a training log a page reads to show its last lines


def log_tail(run_dir: Path, lines: int = 30) -> str | None:
    """The last `lines` lines of a run's training log (read from at most its last LOG_TAIL_BYTES), or None
    when the run has no log."""
    try:
        with open(Path(run_dir) / LOG_NAME, "rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - LOG_TAIL_BYTES))
            data = f.read(LOG_TAIL_BYTES)
    except OSError:
        return None
    text = data.decode("utf-8", errors="replace")
    if size > LOG_TAIL_BYTES:
        text = text.split("\n", 1)[-1]  # the first line read is probably cut: drop it
    return "".join(text.splitlines(keepends=True)[-lines:]) if lines > 0 else ""
