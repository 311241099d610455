"""The launcher starts the real CLI in its own process; these tests wait for real training on the tiny data."""

import os
import signal
import sys
from pathlib import Path

import pytest

from core.store import launcher, runs
from core.training.config import ConfigError
from tests.conftest import tiny_config, wait_for


def state(path: Path) -> str:
    return runs.read_run(path).state


def endless(**overrides):
    """A run that trains until it is stopped (one batch per epoch, 1000 epochs)."""
    return tiny_config(epochs=1000, limit_batches=1, **overrides)


@pytest.fixture(autouse=True)
def no_orphans(store):
    """Stop (and at worst kill) every training process a test leaves behind."""
    yield
    for info in runs.scan(store):
        pid = info.status.get("pid")
        if runs.pid_alive(pid) and pid != os.getpid():
            if info.state in runs.ACTIVE_STATES:
                runs.request_stop(info.path)
            try:
                wait_for("the leftover run to stop", lambda p=pid: not runs.pid_alive(p), timeout=30)
            except AssertionError:
                os.killpg(pid, signal.SIGKILL)


def test_start_runs_the_cli_in_its_own_session_and_completes(store):
    path = launcher.start_run(tiny_config(epochs=2), name="first")
    status = runs.read_json(path / "status.json")
    pid = status["pid"]
    assert path == store / "first" and status["state"] == "queued" and pid != os.getpid()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[:5] == [sys.executable.encode(), b"-m", b"core.train", b"--start", str(path).encode()]
    assert os.getsid(pid) == pid  # a session of its own: a Streamlit restart does not take it down
    assert runs.read_json(path / "config.json") == tiny_config(epochs=2).to_dict()
    wait_for("the run to complete", lambda: state(path) == "completed")
    assert runs.read_run(path).summary["epochs"] == 2
    assert "completed: test accuracy" in (path / launcher.LOG_NAME).read_text()
    wait_for("the child to be reaped", lambda: not runs.pid_alive(pid), timeout=10)

    with pytest.raises(FileExistsError):
        launcher.start_run(tiny_config(), name="first")
    with pytest.raises(ConfigError, match="does not take"):
        launcher.start_run(tiny_config(model_kwargs={"nonsense": 1}), name="bad-kwargs")
    with pytest.raises(ConfigError, match="cannot be built.*whiten=false"):  # arguments that clash
        launcher.start_run(tiny_config(model="fast", model_kwargs={"widths": [48, 64, 128]}), name="bad-widths")
    with pytest.raises(runs.RunNameError):
        launcher.start_run(tiny_config(), name="../escape")
    with pytest.raises(ValueError, match="processes"):
        launcher.start_run(tiny_config(), name="too-many", nproc=0)
    assert sorted(p.name for p in store.iterdir() if not p.name.startswith(".")) == ["first"]
    with pytest.raises(RuntimeError, match="has completed"):
        launcher.resume_run(path)


def test_second_start_waits_in_the_queue_then_both_finish_in_order(store, monkeypatch):
    monkeypatch.setenv("MNIST_STUDIO_MAX_CONCURRENT", "1")
    first = launcher.start_run(endless(), name="a-first")
    second = launcher.start_run(tiny_config(epochs=1), name="b-second")
    third = launcher.start_run(tiny_config(epochs=1), name="c-third")
    wait_for("the first run to train", lambda: state(first) == "running")
    wait_for("both others to report their queue place", lambda: (
        runs.read_run(second).status.get("queue_position") == 0
        and runs.read_run(third).status.get("queue_position") == 1))
    assert state(second) == state(third) == "queued" and state(first) == "running"

    assert launcher.stop_run(third)  # a queued run leaves the queue without training
    wait_for("the queued run to stop", lambda: state(third) == "stopped")
    assert "while queued" in runs.read_run(third).status["hint"] and not (third / "last.pt").exists()
    assert state(second) == "queued" and runs.read_run(second).status["queue_position"] == 0  # still waiting
    assert launcher.stop_run(first)
    wait_for("the first run to stop", lambda: state(first) == "stopped")
    wait_for("the second run to complete", lambda: state(second) == "completed")
    assert runs.read_json(second / "status.json")["started"] >= runs.read_json(first / "status.json")["finished"]
    assert not launcher.stop_run(second)  # nothing to stop


def test_stop_resume_and_delete_of_a_running_run(store):
    path = launcher.start_run(tiny_config(epochs=12, limit_batches=1), name="r")
    wait_for("a finished epoch", lambda: (path / "last.pt").exists() and state(path) == "running")
    with pytest.raises(RuntimeError, match="still active"):
        launcher.delete_run(path)
    with pytest.raises(RuntimeError, match="still running"):
        launcher.resume_run(path)
    launcher.stop_run(path)
    wait_for("the run to stop", lambda: state(path) == "stopped")
    done = runs.read_run(path).summary["epochs"]
    assert 1 <= done < 12

    launcher.resume_run(path)
    assert state(path) == "queued"
    wait_for("the resumed run to complete", lambda: state(path) == "completed")
    events, _ = runs.read_metrics(path)
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == list(range(1, 13))
    assert [e["epoch"] for e in events if e["type"] == "resume"] == [done]
    assert runs.read_run(path).summary["epochs"] == 12

    launcher.delete_run(path)
    assert not path.exists()
    with pytest.raises(runs.RunNameError):
        launcher.delete_run(store.parent)  # never anything outside the runs directory


def test_train_command_uses_torchrun_for_several_processes(tmp_path):
    assert launcher.train_command(tmp_path, resume=True) == [
        sys.executable, "-m", "core.train", "--resume", str(tmp_path), "--queue", "--quiet"]
    command = launcher.train_command(tmp_path, nproc=2)
    assert command[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    assert command[6:9] == ["-m", "core.train", "--start-run"]  # torchrun would read --start as its own flag
    for bad in (0, 65, 1.5, True):
        with pytest.raises(ValueError):
            launcher.train_command(tmp_path, nproc=bad)


def test_resume_of_a_run_that_never_trained_starts_it_from_the_beginning(store):
    path = store / "never"
    runs.RunWriter.create(path, tiny_config(epochs=1, limit_batches=2).to_dict(), state="stopped")
    launcher.resume_run(path)  # no last.pt: `--resume` would be refused, so it is started
    wait_for("the run to complete", lambda: state(path) == "completed")
    assert runs.read_run(path).summary["epochs"] == 1
    assert "core.train --start " in (path / launcher.LOG_NAME).read_text()


def test_a_slot_held_by_a_sigkilled_run_is_freed_and_waiting_runs_start_first_come_first_served(store, monkeypatch):
    monkeypatch.setenv("MNIST_STUDIO_MAX_CONCURRENT", "1")
    holder = launcher.start_run(endless(), name="m-holder")
    wait_for("the holder to train", lambda: state(holder) == "running")
    second = launcher.start_run(endless(), name="z-second")  # queued first, though last by name
    third = launcher.start_run(endless(), name="a-third")
    wait_for("both others to report their queue place", lambda: (
        runs.read_run(second).status.get("queue_position") == 0
        and runs.read_run(third).status.get("queue_position") == 1))

    os.kill(runs.read_run(holder).status["pid"], signal.SIGKILL)  # no stop request, no clean-up: the OS frees it
    wait_for("the second-queued run to take the freed slot", lambda: state(second) == "running")
    assert state(holder) == "failed" and "interrupted" in runs.read_run(holder).status["error"]
    assert state(third) == "queued"
    wait_for("the third run to move up", lambda: runs.read_run(third).status.get("queue_position") == 0)

    os.kill(runs.read_run(second).status["pid"], signal.SIGKILL)
    wait_for("the last-queued run to start", lambda: state(third) == "running")
    assert state(second) == "failed"
