"""Making a run's map (core.analysis.projection) in the background: one detached process per run, a claim, progress.

UMAP of 10,000 test images takes one to two minutes of one core here (131 s at load average 9, first call
included), so nobody waits for it: `start(run_dir)` spawns `python -m core.analysis.projection_job RUN_DIR` in a
session of its own (niced, one thread), after training (core.train, once the training slot is free) or from the
Evaluate page for a run that has no map. The claim is an exclusive lock on RUN_DIR/.projection.lock taken by the
starter and inherited by the process, held for its whole life and released by the OS however it ends: two starts
never make the same map twice. The process writes RUN_DIR/.projection_progress.json (stage, fraction, error) as it
goes; `state(run_dir)` reads it. A failure there is written to that file only, never to the run's status. Shipped
runs are read-only (they ship their maps).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.store import atomic, runs
from core.store.spawn import spawn_detached

LOCK_NAME = ".projection.lock"
PROGRESS_NAME = ".projection_progress.json"
LOG_NAME = "projection.log"
AUTO_ENV = "MNIST_STUDIO_AUTO_PROJECTION"  # "0": no map is made by itself (after training, on Evaluate)
TIME_LIMIT_S = 20 * 60  # wall-clock bound of one job (a loaded 2-core machine takes ~2 min)
NICENESS = 10  # background work yields to training and to the pages
# where each stage starts on the job's progress bar; UMAP's neighbour graph takes about UMAP_NEIGHBOURS of it,
# its optimisation epochs (reported by umap-learn) the rest
STAGE_START = {"starting": 0.0, "features": 0.02, "umap": 0.2}
UMAP_NEIGHBOURS = 0.25


@dataclass
class JobState:
    """Where a run's map stands: `state` is none, running, done or failed."""

    state: str
    stage: str = ""
    fraction: float = 0.0
    error: str | None = None
    started: float | None = None


def auto_enabled() -> bool:
    """Whether maps are made by themselves (after training, when Evaluate opens a run without one)."""
    return os.environ.get(AUTO_ENV, "1") != "0"


def _lock_busy(run_dir: Path) -> bool:
    """True while some process holds the run's claim."""
    try:
        fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if we took it
    return False


def state(run_dir: Path) -> JobState:
    """The map's state from the stored file, the claim and the progress file (a job that died is `failed`)."""
    from core.analysis.projection import FILE_NAME

    run_dir = Path(run_dir)
    progress = runs.read_json(run_dir / PROGRESS_NAME) or {}
    fraction = progress.get("fraction") if isinstance(progress.get("fraction"), int | float) else 0.0
    stage, started = str(progress.get("stage") or ""), progress.get("started")
    if _lock_busy(run_dir):
        return JobState("running", stage, float(fraction), started=started)
    if (run_dir / FILE_NAME).is_file():
        return JobState("done", fraction=1.0)
    if progress.get("state") == "failed":
        return JobState("failed", stage, float(fraction), str(progress.get("error") or "unknown error"), started)
    if progress.get("state") == "running":
        return JobState("failed", stage, float(fraction), "the map's process ended before finishing it", started)
    return JobState("none")


def _claim(run_dir: Path) -> int | None:
    """An open descriptor holding the run's claim, or None when another process holds it."""
    fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _write_progress(run_dir: Path, **fields) -> None:
    atomic.write_json(Path(run_dir) / PROGRESS_NAME, {"time": time.time(), **fields})


def start(run_dir: Path) -> bool:
    """Start making the run's map in a background process; False when it has one, is shipped, or one is under way."""
    from core.analysis.projection import FILE_NAME

    run_dir = Path(run_dir)
    if runs.is_shipped(run_dir) or (run_dir / FILE_NAME).is_file() or not (run_dir / "best.pt").is_file():
        return False
    fd = _claim(run_dir)
    if fd is None:
        return False
    try:
        if (run_dir / FILE_NAME).is_file():  # finished between the check and the claim
            return False
        _write_progress(run_dir, state="running", stage="starting", fraction=0.0, started=time.time())
        command = [sys.executable, "-m", "core.analysis.projection_job", str(run_dir), "--claim-fd", str(fd)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
        spawn_detached(command, run_dir / LOG_NAME, pass_fds=(fd,), env=env)
        return True
    except OSError as err:
        _write_progress(run_dir, state="failed", stage="starting", fraction=0.0, error=f"could not start: {err}")
        return False
    finally:
        os.close(fd)  # the child holds the claim now (or nobody, if it could not start)


def start_after_training(run_dir: Path) -> None:
    """core.train's last step for a completed run: start its map unless switched off; never raises."""
    if not auto_enabled():
        return
    try:
        start(run_dir)
    except Exception as err:  # the run is done and stays done whatever happens here
        print(f"the map of the test images was not started: {err}", file=sys.stderr)


class _EpochProgress:
    """A file for umap-learn's epoch bar ("done total" lines) that reports each further 5% of the epochs."""

    def __init__(self, report):
        self.report, self.last = report, -1.0

    def write(self, text: str) -> None:
        numbers = re.findall(r"(\d+) (\d+)", text)
        if numbers:
            done, total = map(int, numbers[-1])
            share = done / max(1, total)
            if share - self.last >= 0.05 or (share >= 1 > self.last):
                self.last = share
                self.report(share)

    def flush(self) -> None:
        pass


def make(run_dir: Path) -> Path:
    """Compute and store the run's map now (in this process), writing progress as it goes; returns the file."""
    from core.analysis import projection
    from core.data.datasets import load_split
    from core.store.checkpoint import load_model

    run_dir = Path(run_dir)
    started = time.time()

    def report(stage: str, fraction: float | None = None) -> None:
        fraction = STAGE_START[stage] if fraction is None else fraction
        _write_progress(run_dir, state="running", stage=stage, fraction=round(fraction, 3), started=started,
                        pid=os.getpid())

    def epochs(share: float) -> None:
        report("umap", STAGE_START["umap"] + UMAP_NEIGHBOURS + share * (1 - STAGE_START["umap"] - UMAP_NEIGHBOURS))

    report("features")
    loaded = load_model(run_dir)
    images, labels = load_split(loaded.dataset, train=False, download=False)
    made = projection.project_run(loaded, images.numpy(), labels.numpy(), report=report,
                                  progress=_EpochProgress(epochs))
    path = projection.save(run_dir, made)
    _write_progress(run_dir, state="done", stage="done", fraction=1.0, started=started, seconds=time.time() - started)
    return path


def _time_limit(seconds: int) -> None:
    def expired(signum, frame):
        raise TimeoutError(f"the map took longer than {seconds // 60} minutes")
    signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)


def main(argv: list[str] | None = None) -> int:
    """python -m core.analysis.projection_job RUN_DIR...: make each run's map (bounded, one at a time per run)."""
    parser = argparse.ArgumentParser(prog="python -m core.analysis.projection_job",
                                     description="Store the PCA and UMAP maps of runs' test images (projection.npz).")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--claim-fd", type=int, help=argparse.SUPPRESS)  # the claim, inherited from start()
    args = parser.parse_args(argv)
    if args.claim_fd is not None and len(args.runs) != 1:
        parser.error("--claim-fd goes with one run")
    failures, settled = 0, False
    for run_dir in args.runs:
        if runs.is_shipped(run_dir):
            print(f"{run_dir}: a shipped pretrained run is read-only (it ships its map)", file=sys.stderr)
            failures += 1
            continue
        if not (run_dir / "best.pt").is_file():
            print(f"{run_dir}: not a trained run (no best.pt)", file=sys.stderr)
            failures += 1
            continue
        fd = args.claim_fd if args.claim_fd is not None else _claim_or_none(run_dir)
        if fd is None:
            print(f"{run_dir}: its map is already being made, or the run cannot be read", file=sys.stderr)
            failures += 1
            continue
        if not settled:  # background work: one thread, below training and the pages
            _settle()
            settled = True
        _time_limit(TIME_LIMIT_S)
        try:
            print(make(run_dir), flush=True)
        except Exception as err:
            failures += 1
            message = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            print(f"{run_dir}: the map could not be made: {message}", file=sys.stderr, flush=True)
            with contextlib.suppress(OSError):
                _write_progress(run_dir, state="failed", stage="failed", error=message)
        finally:
            signal.alarm(0)
            os.close(fd)
    return 1 if failures else 0


def _settle() -> None:
    import torch

    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    torch.set_num_threads(1)


def _claim_or_none(run_dir: Path) -> int | None:
    try:
        return _claim(run_dir)
    except OSError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
