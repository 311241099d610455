"""Faults for real: a training process killed with SIGKILL, and kills in the middle of checkpoint writes."""

import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from core.models.registry import create_model
from core.store import atomic, runs
from core.store.checkpoint import load_checkpoint, save_checkpoint
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


ARCH = "cnn_enhanced"  # a 7 MB checkpoint: a write takes long enough to be caught in the middle
META = {"arch": ARCH, "model_kwargs": {}, "dataset": "mnist", "class_names": [str(c) for c in range(10)],
        "mean": 0.1, "std": 0.3}


def weights_of(generation: int) -> dict[str, torch.Tensor]:
    """The state the writer saves as `generation`: every tensor different, every element seeded by it."""
    gen = torch.Generator().manual_seed(generation)
    return {k: torch.randn(v.shape, generator=gen).to(v.dtype) if v.is_floating_point()
            else torch.full_like(v, generation) for k, v in create_model(ARCH).state_dict().items()}


def write_forever(directory: Path, first: int, done) -> None:
    """A child's whole life: save best.pt, last.pt and summary.json as generation first, first+1, ... until
    killed (through the real atomic writers), counting finished generations in `done`."""
    model = create_model(ARCH)
    generation = first
    while True:
        model.load_state_dict(weights_of(generation))
        save_checkpoint(directory / "best.pt", model, **META, generation=generation)
        optimizer = {"state": {0: {"momentum_buffer": torch.full((64,), float(generation))}}, "param_groups": []}
        save_checkpoint(directory / "last.pt", model, **META, generation=generation, optimizer=optimizer,
                        progress={"epoch": generation})
        atomic.write_json(directory / "summary.json", {"generation": generation, "padding": "x" * 200_000})
        done.value = generation
        generation += 1


def assert_consistent(path: Path, generations: set[int]) -> int:
    """`path` loads, and every tensor in it equals the state of the generation it claims."""
    payload = load_checkpoint(path)  # a truncated or torn file raises here
    generation = payload["generation"]
    assert generation in generations, (path.name, generation)
    expected = weights_of(generation)
    assert payload["state_dict"].keys() == expected.keys()
    for key, value in payload["state_dict"].items():
        assert torch.equal(value, expected[key]), (path.name, generation, key)
    if path.name == "last.pt":
        assert torch.equal(payload["optimizer"]["state"][0]["momentum_buffer"], torch.full((64,), float(generation)))
        assert payload["progress"]["epoch"] == generation
    return generation


TEMPORARY = re.compile(r"^\.(best\.pt|last\.pt|summary\.json)\..+\.tmp$")


def test_many_kills_at_random_moments_never_leave_a_torn_checkpoint(tmp_path):
    """SIGKILL writer processes again and again at random moments, until at least one kill provably landed
    inside a write (its temporary file is left behind); after every kill, best.pt and last.pt load and every
    tensor equals one whole generation, and summary.json is whole."""
    context = multiprocessing.get_context("fork")  # torch is imported once; each writer starts at once
    rng = random.Random(15)
    done = context.Value("q", -1)
    kills, started = 0, set()
    while kills < 12 or not [p for p in tmp_path.iterdir() if TEMPORARY.match(p.name)]:
        assert kills < 80, "no kill landed inside a write"
        first = kills * 1000
        started |= set(range(first, first + 1000))
        proc = context.Process(target=write_forever, args=(tmp_path, first, done), daemon=True)
        proc.start()
        if kills == 0:
            wait_for("a first whole generation", lambda: done.value >= 0, 60, poll=0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=10)
        assert proc.exitcode == -signal.SIGKILL
        kills += 1
        best = assert_consistent(tmp_path / "best.pt", started)
        last = assert_consistent(tmp_path / "last.pt", started)
        assert runs.read_json(tmp_path / "summary.json")["generation"] <= last <= best  # the order of the writes
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("best.pt", "last.pt", "summary.json")]
    assert leftovers and all(TEMPORARY.match(name) for name in leftovers), leftovers
