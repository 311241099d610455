import json
import os
import subprocess
import sys
import time

import pytest

from core.store import runs


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "/etc", ".hidden", "-rf", "", "a" * 121, "x\x00y", "a..b"])
def test_run_names_that_could_escape_are_refused(bad, tmp_path):
    with pytest.raises(runs.RunNameError):
        runs.run_dir_for(bad, tmp_path)


def test_good_name_stays_inside_the_root(tmp_path):
    assert runs.run_dir_for("20261121-mnist-fast_2.a", tmp_path) == (tmp_path / "20261121-mnist-fast_2.a").resolve()


def test_new_names_are_unique(tmp_path):
    first = runs.new_run_name("mnist", "fast", tmp_path, now=0)
    (tmp_path / first).mkdir()
    assert runs.new_run_name("mnist", "fast", tmp_path, now=0) == first + "-2"


def test_writer_creates_a_readable_run(tmp_path):
    writer = runs.RunWriter.create(tmp_path / "r1", {"dataset": "mnist", "model": "fast"}, state="running")
    writer.log({"type": "step", "epoch": 1, "step": 1, "loss": float("nan")})
    info = runs.read_run(tmp_path / "r1")
    assert info.state == "running" and info.dataset == "mnist" and not info.problems
    events, bad = runs.read_metrics(tmp_path / "r1")
    assert bad == 0 and events[0]["loss"] is None  # NaN is written as null, never as invalid JSON
    with pytest.raises(FileExistsError):
        runs.RunWriter.create(tmp_path / "r1", {})


def test_corrupt_metrics_lines_are_skipped_and_counted(tmp_path):
    writer = runs.RunWriter.create(tmp_path / "r", {"dataset": "mnist"})
    writer.log({"type": "epoch", "epoch": 1})
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"type": "epoch", "epo\n[1, 2]\n\x00\xff garbage\n')
    writer.log({"type": "epoch", "epoch": 2})
    events, bad = runs.read_metrics(tmp_path / "r")
    assert [e["epoch"] for e in events] == [1, 2] and bad == 3


def test_dead_process_is_reported_as_interrupted(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    status = {"state": "running", "pid": proc.pid, "heartbeat": time.time(), "host": None}
    shown = runs.effective_status(status)
    assert shown["state"] == "failed" and "interrupted" in shown["error"]


def test_stale_heartbeat_is_interrupted_and_live_one_is_running():
    alive = {"state": "running", "pid": os.getpid(), "heartbeat": time.time()}
    assert runs.effective_status(alive)["state"] == "running"
    stale = {**alive, "heartbeat": time.time() - runs.STALE_AFTER_SECONDS - 5}
    assert runs.effective_status(stale)["state"] == "failed"


def test_junk_in_the_store_is_listed_with_a_problem_never_raised(store):
    store.mkdir(parents=True)
    (store / "notes.txt").write_text("hello")
    (store / "broken").mkdir()
    (store / "broken" / "status.json").write_text("{not json")
    (store / "half").mkdir()
    (store / "half" / "config.json").write_text(json.dumps({"dataset": "mnist", "model": "fast"}))
    (store / "half" / "status.json").write_text(json.dumps({"state": "completed"}))
    listed = {r.name: r for r in runs.list_runs()}
    assert set(listed) == {"broken", "half"}
    assert listed["broken"].state == "failed" and listed["broken"].problems
    assert "summary.json is missing" in listed["half"].problems


def test_delete_refuses_paths_outside_the_store(store, tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    with pytest.raises(runs.RunNameError):
        runs.delete_run(outside)
    assert outside.exists()
