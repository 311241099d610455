"""Start, stop, resume and delete runs from the app: each run trains in its own process, the same CLI a user calls.

`start_run` prepares the run directory (state `queued`) and spawns
`python -m core.train --start RUN_DIR --queue --quiet` (through `torch.distributed.run` for several
processes) in a new session, so a Streamlit rerun, a closed tab or a restarted server never interrupts it.
The child waits for a training slot (core.slots, $MNIST_STUDIO_MAX_CONCURRENT, default 1) and writes its
queue position into status.json meanwhile. Its output goes to RUN_DIR/train.log.
"""

from __future__ import annotations

import functools
import inspect
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.models.registry import create_model, get_entry
from core.store import runs
from core.store.paths import REPO_ROOT, runs_root
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
    """Messages for model arguments the chosen architecture does not take or cannot be built with
    (TrainConfig cannot know them)."""
    try:
        inspect.signature(get_entry(config.model).build).bind(**config.model_kwargs)
    except TypeError as err:
        return [f"model_kwargs: {config.model} does not take these arguments ({err})"]
    problem = _build_problem(config.model, json.dumps(config.model_kwargs, sort_keys=True))
    return [f"model_kwargs: {config.model} cannot be built with these arguments ({problem})"] if problem else []


@functools.lru_cache(maxsize=64)
def _build_problem(model: str, kwargs_json: str) -> str | None:
    """Why `model` cannot be built with these arguments, or None; cached, as the Train form asks on every rerun
    (building ResNet-18 takes about 60 ms)."""
    try:
        create_model(model, **json.loads(kwargs_json))
    except (TypeError, ValueError, RuntimeError) as err:
        return str(err)
    return None


def _spawn(path: Path, resume: bool, nproc: int) -> int:
    """Start the training process of `path` detached from ours; returns its pid and reaps it when it ends."""
    command = train_command(path, resume, nproc)
    with open(path / LOG_NAME, "ab") as log:
        log.write(f"\n$ {' '.join(command)}  # {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        proc = subprocess.Popen(command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    threading.Thread(target=proc.wait, name=f"reap-{path.name}", daemon=True).start()
    return proc.pid


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


def start_run(config: TrainConfig, name: str | None = None, nproc: int = 1) -> Path:
    """Create a run for `config` (named `name`, or time-dataset-model) and start training it; returns its path.

    Raises ConfigError for invalid settings, RunNameError for a bad name, FileExistsError for a taken one.
    """
    config.validate()
    problems = model_kwargs_problems(config)
    if problems:
        raise ConfigError(problems)
    train_command(Path("."), nproc=nproc)  # refuse a bad process count before creating anything
    root = runs_root()
    path = runs.run_dir_for(name.strip() if name and name.strip() else
                            runs.new_run_name(config.dataset, config.model, root), root)
    runs.RunWriter.create(path, config.to_dict(), state="queued")
    _launch(path, resume=False, nproc=nproc)
    return path


def can_resume(info: runs.RunInfo) -> str | None:
    """Why `info` cannot be resumed, or None when it can."""
    if info.source != "user":
        return "pretrained runs cannot be resumed"
    if info.config is None:
        return "its config.json is missing"
    if info.state in runs.ACTIVE_STATES:
        return f"it is still {info.state}"
    if info.state == "completed":
        return "it has completed"
    if info.state == "pruned":
        return "its experiment pruned it (a weak trial; the experiment's other trials carry on)"
    return None


def stop_run(path: Path) -> bool:
    """Ask a queued or running run to stop (it saves its progress and ends as `stopped`); False if not active."""
    if runs.read_run(Path(path)).state not in runs.ACTIVE_STATES:
        return False
    runs.request_stop(Path(path))
    return True


def resume_run(path: Path, nproc: int | None = None) -> None:
    """Continue a stopped, failed, diverged or interrupted run from its last.pt (queued like a new start)."""
    path = Path(path)
    info = runs.read_run(path)
    reason = can_resume(info)
    if reason:
        raise RuntimeError(f"run {path.name} cannot be resumed: {reason}")
    nproc = nproc or int(info.status.get("nproc") or 1)
    train_command(path, True, nproc)
    runs.clear_stop_request(path)
    _launch(path, resume=True, nproc=nproc)


def delete_run(path: Path) -> None:
    """Delete a finished user run (refused for an active run, a pretrained one, or anything else)."""
    runs.delete_run(Path(path))
