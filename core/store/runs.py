"""The run store: a run is a directory anyone can read; this module writes and reads it safely.

Layout of a run directory:
  config.json        the TrainConfig
  metrics.jsonl      one JSON event per line (start, step, epoch, test, end), flushed as written
  status.json        state (queued|running|completed|stopped|pruned|failed|diverged), pid, heartbeat, error, hint
                     (pruned: an experiment's pruner stopped it early; finished, its history kept)
  last.pt, best.pt   checkpoints (see core.checkpoint)
  test_outputs.npz   float16 probabilities for every official test image, and the labels
  summary.json       test accuracy, macro F1, parameters, training seconds, epochs
  stop.request       present while a stop has been asked for
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.store import atomic
from core.store.paths import pretrained_root, runs_root

STATES = ("queued", "running", "completed", "stopped", "pruned", "failed", "diverged")
ACTIVE_STATES = ("queued", "running")
HEARTBEAT_SECONDS = 2.0
STALE_AFTER_SECONDS = 30.0
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")


class RunNameError(ValueError):
    """A run name that could escape the runs directory or is otherwise not allowed."""


def validate_run_name(name: str) -> str:
    """Return `name` if it is a safe run name: letters, digits, '.', '_', '-', no '..', not hidden."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise RunNameError(f"invalid run name {name!r}: use 1-120 letters, digits, '.', '_' or '-' "
                           "(not starting with '.' or '-', no '..')")
    return name


def run_dir_for(name: str, root: Path | None = None) -> Path:
    """The directory of run `name` under `root` (default: the user runs root), validated to stay inside."""
    root = Path(root or runs_root()).resolve()
    path = (root / validate_run_name(name)).resolve()
    if path.parent != root:
        raise RunNameError(f"run {name!r} would lie outside {root}")
    return path


def resolve_run_path(text: str | Path) -> Path:
    """A run directory from a CLI argument: a path to an existing run, or a run name in a known root."""
    path = Path(text)
    if path.is_dir() and (path / "config.json").is_file():
        return path.resolve()
    for root in (runs_root(), pretrained_root()):
        try:
            candidate = run_dir_for(str(text), root)
        except RunNameError:
            continue
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no run directory at {text!r} (give a run directory, or the name of a run in "
                            f"{runs_root()} or {pretrained_root()})")


def new_run_name(dataset: str, model: str, root: Path | None = None, now: float | None = None) -> str:
    """A fresh, sortable name like 20261121-140501-fashion-mnist-fast (suffixed if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = validate_run_name(f"{stamp}-{dataset}-{model}")
    root = Path(root or runs_root())
    name, n = base, 1
    while (root / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _json_safe(value):
    """Replace NaN/inf (not valid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def pid_alive(pid: int | None) -> bool:
    """True when process `pid` exists on this machine and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class RunWriter:
    """What a training process uses to write its run directory (only rank 0 makes one)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._status: dict = {}
        self._lock = threading.Lock()
        self._beat: threading.Thread | None = None
        self._stop_beat = threading.Event()

    @classmethod
    def create(cls, path: Path, config: dict, state: str = "queued") -> RunWriter:
        """Make a new run directory holding `config`; refuses to reuse an existing run."""
        path = Path(path)
        if (path / "config.json").exists():
            raise FileExistsError(f"run directory {path} already holds a run")
        writer = cls(path)
        atomic.write_json(path / "config.json", config)
        writer.set_status(state, created=time.time())
        return writer

    def set_status(self, state: str, pid: int | None = None, **fields) -> None:
        """Atomically update status.json (state plus any fields, e.g. error and hint); pid defaults to ours."""
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        with self._lock:
            if not self._status:
                self._status = read_json(self.path / "status.json") or {}
            self._status.update(fields, state=state, pid=pid or os.getpid(), host=socket.gethostname(),
                                heartbeat=time.time())
            if state not in ACTIVE_STATES:
                self._status.setdefault("finished", time.time())
            else:
                self._status.pop("finished", None)
            atomic.write_json(self.path / "status.json", _json_safe(self._status))

    def heartbeat(self) -> None:
        """Refresh the heartbeat so readers know the process is alive."""
        with self._lock:
            if self._status.get("state") in ACTIVE_STATES:
                self._status["heartbeat"] = time.time()
                atomic.write_json(self.path / "status.json", _json_safe(self._status))

    def start_heartbeat(self) -> None:
        """Refresh the heartbeat every few seconds from a daemon thread, until stop_heartbeat()."""
        def beat():
            while not self._stop_beat.wait(HEARTBEAT_SECONDS):
                self.heartbeat()
        self._beat = threading.Thread(target=beat, name="run-heartbeat", daemon=True)
        self._beat.start()

    def stop_heartbeat(self) -> None:
        self._stop_beat.set()
        if self._beat:
            self._beat.join(timeout=5)

    def log(self, event: dict) -> None:
        """Append one event to metrics.jsonl and flush it, so a live view sees it at once."""
        line = json.dumps(_json_safe({"time": round(time.time(), 3), **event}), allow_nan=False)
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()

    def truncate_metrics(self, keep_through_epoch: int) -> None:
        """For resume: keep only events of epochs up to `keep_through_epoch` (drop a half-done epoch)."""
        events, _ = read_metrics(self.path)
        kept = [e for e in events if e.get("epoch", 0) <= keep_through_epoch]
        atomic.write_bytes(self.path / "metrics.jsonl",
                           "".join(json.dumps(e) + "\n" for e in kept).encode())


def read_json(path: Path) -> dict | None:
    """A JSON object from `path`, or None when missing or unreadable."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_metrics(path: Path) -> tuple[list[dict], int]:
    """(events, number of unreadable lines) from a run's metrics.jsonl; junk lines are skipped."""
    events, bad = [], 0
    try:
        with open(Path(path) / "metrics.jsonl", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(event, dict) and isinstance(event.get("type"), str):
                    events.append(event)
                else:
                    bad += 1
    except OSError:
        pass
    return events, bad


def request_stop(path: Path) -> None:
    """Ask the training process of a run to save and stop (it checks between steps)."""
    atomic.write_bytes(Path(path) / "stop.request", b"stop\n")


def stop_requested(path: Path) -> bool:
    return (Path(path) / "stop.request").exists()


def clear_stop_request(path: Path) -> None:
    (Path(path) / "stop.request").unlink(missing_ok=True)


@dataclass
class RunInfo:
    """What a reader knows of one run directory; never raises for a broken run."""

    name: str
    path: Path
    source: str  # "user" or "pretrained"
    config: dict | None
    status: dict
    summary: dict | None
    problems: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        return self.status.get("state", "failed")

    @property
    def dataset(self) -> str | None:
        return (self.config or {}).get("dataset")

    @property
    def model(self) -> str | None:
        return (self.config or {}).get("model")

    @property
    def has_weights(self) -> bool:
        return (self.path / "best.pt").is_file() or (self.path / "last.pt").is_file()

    @property
    def has_test_outputs(self) -> bool:
        return (self.path / "test_outputs.npz").is_file()

    @property
    def label(self) -> str:
        prefix = "pretrained/" if self.source == "pretrained" else ""
        return f"{prefix}{self.name}"

    @property
    def created(self) -> float:
        return float(self.status.get("created") or _mtime(self.path))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def effective_status(status: dict | None, now: float | None = None) -> dict:
    """The status as readers should show it: an active run whose process is gone is 'failed' (interrupted)."""
    status = dict(status or {})
    if status.get("state") not in STATES:
        return {**status, "state": "failed", "error": "status.json is missing or unreadable",
                "hint": "the run directory may be incomplete; delete it or start a new run"}
    if status["state"] in ACTIVE_STATES:
        now = now or time.time()
        same_host = status.get("host") in (None, socket.gethostname())
        stale = now - float(status.get("heartbeat") or 0) > STALE_AFTER_SECONDS
        dead = same_host and not pid_alive(status.get("pid"))
        if dead or stale:
            status.update(state="failed", error="interrupted: the training process ended without finishing",
                          hint="Resume continues from the last completed epoch.", interrupted=True)
    return status


def read_run(path: Path, source: str = "user") -> RunInfo:
    """Everything readable about a run directory; problems are listed, never raised."""
    path = Path(path)
    problems = []
    config = read_json(path / "config.json")
    if config is None:
        problems.append("config.json is missing or unreadable")
    raw_status = read_json(path / "status.json")
    if raw_status is None and source == "pretrained":
        raw_status = {"state": "completed"}
    status = effective_status(raw_status)
    summary = read_json(path / "summary.json")
    if summary is None and status.get("state") == "completed":
        problems.append("summary.json is missing")
    return RunInfo(path.name, path, source, config, status, summary, problems)


def scan(root: Path, source: str = "user") -> list[RunInfo]:
    """The runs directly under `root` (directories with a config or status file), in no set order."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [read_run(child, source) for child in root.iterdir()
            if child.is_dir() and NAME_PATTERN.match(child.name) and ".." not in child.name
            and ((child / "config.json").exists() or (child / "status.json").exists())]


def list_runs(include_pretrained: bool = True, dataset: str | None = None) -> list[RunInfo]:
    """All runs, newest user runs first, then pretrained ones by name; junk entries are flagged, never raised."""
    runs = sorted(scan(runs_root(), "user"), key=lambda r: (r.created, r.name), reverse=True)
    if include_pretrained:
        runs += sorted(scan(pretrained_root(), "pretrained"), key=lambda r: r.name)
    if dataset:
        runs = [r for r in runs if r.dataset == dataset]
    return runs


def delete_run(path: Path) -> None:
    """Delete a user run directory (never a pretrained one, never anything outside the runs root)."""
    path = Path(path).resolve()
    root = runs_root()
    if path.parent != root or not NAME_PATTERN.match(path.name):
        raise RunNameError(f"refusing to delete {path}: not a run directory under {root}")
    if effective_status(read_json(path / "status.json")).get("state") in ACTIVE_STATES:
        raise RuntimeError(f"run {path.name} is still active; stop it before deleting")
    shutil.rmtree(path)


def load_test_outputs(path: Path):
    """(probs float32 [N,10], labels int64 [N]) stored at the end of training."""
    import numpy as np

    with np.load(Path(path) / "test_outputs.npz") as data:
        return data["probs"].astype(np.float32), data["labels"].astype(np.int64)
