"""Faults for real: a training process killed with SIGKILL, and kills in the middle of checkpoint writes."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from core.store import runs
from core.store.checkpoint import load_checkpoint
from tests.conftest import REPO, wait_for


def _epochs_done(path):
    return [e for e in runs.read_metrics(path)[0] if e["type"] == "epoch"]


def test_sigkill_mid_epoch_shows_interrupted_keeps_last_and_resumes_to_the_same_epoch_count(store):
    cmd = [sys.executable, "-m", "core.train", "--dataset", "mnist", "--model", "cnn2", "--epochs", "12",
           "--batch-size", "16", "--threads", "1", "--precision", "fp32", "--name", "victim", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    path = store / "victim"
    try:
        wait_for("two finished epochs", lambda: len(_epochs_done(path)) >= 2, 120)
        steps_before = len(runs.read_metrics(path)[0])
        wait_for("a step of the next epoch", lambda: len(runs.read_metrics(path)[0]) > steps_before, 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = time.time()
    info = wait_for("the run to show as failed", lambda: (r := runs.read_run(path)).state == "failed" and r, 10)
    assert time.time() - killed_at < 10
    assert "interrupted" in info.status["error"]
    done = len(_epochs_done(path))
    last = load_checkpoint(path / "last.pt")  # intact and readable
    assert last["progress"]["epoch"] == done >= 2
    assert [e["epoch"] for e in _epochs_done(path)] == list(range(1, done + 1))

    resumed = subprocess.run([sys.executable, "-m", "core.train", "--resume", str(path), "--quiet"], cwd=REPO,
                             env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    info = runs.read_run(path)
    assert info.state == "completed" and info.summary["epochs"] == 12
    assert [e["epoch"] for e in _epochs_done(path)] == list(range(1, 13))


WRITER = """
import sys, torch
from core.store.checkpoint import save_checkpoint
from core.models.registry import create_model
from core.store import atomic
model = create_model("cnn_enhanced")
target = sys.argv[1]
i = 0
while True:
    i += 1
    for p in model.parameters():
        p.data.fill_(float(i))
    save_checkpoint(target + "/best.pt", model, arch="cnn_enhanced", model_kwargs={}, dataset="mnist",
                    class_names=[str(c) for c in range(10)], mean=0.1, std=0.3, generation=i)
    atomic.write_json(target + "/summary.json", {"generation": i, "padding": "x" * 200000})
    print(i, flush=True)
"""


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_kill_during_checkpoint_writes_never_leaves_a_truncated_file(tmp_path, delay):
    """SIGKILL a process that rewrites a 7 MB checkpoint and a summary in a loop, at varying moments."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    try:
        proc.stdout.readline()  # one full generation written
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    payload = load_checkpoint(tmp_path / "best.pt")
    generation = payload["generation"]
    assert all(torch.all(v == generation) for k, v in payload["state_dict"].items() if k == "0.weight")
    assert runs.read_json(tmp_path / "summary.json")["generation"] >= 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("best.pt", "summary.json")]
    assert all(name.endswith(".tmp") for name in leftovers)  # only unreferenced temporaries can remain
