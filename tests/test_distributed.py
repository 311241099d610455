"""torchrun on the CPU: two real processes (gloo) train one run, and it matches a single-process run.

These start PyTorch's own launcher (`python -m torch.distributed.run`, i.e. torchrun) as a subprocess on the
tiny synthetic data, exactly as a user would; each rank uses one thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from core.store import runs
from core.store.checkpoint import load_checkpoint
from core.training.distributed import DUMP_WEIGHTS_ENV, DistContext, rank_device
from core.training.loop import Trainer
from core.training.session import run
from tests.conftest import REPO, tiny_config

# Momentum SGD rather than Adam: Adam divides by sqrt(v), which blows rounding noise on near-zero gradients up
# (2e-5 here), while SGD keeps it at float32 rounding. 63 images per step: shards of 32 and 31, so the test
# also checks that unequal shards are weighted by their size (unweighted, the weights differ by ~0.07).
SETTINGS = {"optimizer": "momentum", "lr": 0.05, "batch_size": 63}
# DDP sums the two shards' gradients in another order than one process sums the whole batch: float32
# rounding (~1e-7 per step) that 14 steps grow to ~3e-7 here; 1e-4 leaves room and still catches a real
# difference (unweighted shards moved weights by 7e-2; a skipped all-reduce fails the rank-vs-rank check).
WEIGHT_TOLERANCE = 1e-4


def _flags(config) -> list[str]:
    """The command-line flags that give `config` (every field spelled out)."""
    out = []
    for key, value in config.to_dict().items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        else:
            out += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
    return out


@contextlib.contextmanager
def _torchrun(args: list[str], env: dict, log, nproc: int = 2):
    """`torchrun --standalone --nproc_per_node N -m core.train ARGS` (output to the open file `log`), as a Popen.

    Whatever happens in the block, the job is ended on leaving it: SIGTERM first, on which torchrun ends its
    workers too (they run in sessions of their own, so killing torchrun alone would orphan them).
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               "-m", "core.train", *args]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _env(**extra) -> dict:
    env = {**os.environ, **extra}  # the store fixture's MNIST_STUDIO_* variables included
    env.pop("OMP_NUM_THREADS", None)  # torchrun sets 1 per process
    return env


def _state_dict(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_two_processes_write_one_run_and_train_like_one_process(store, tmp_path, monkeypatch):
    config = tiny_config(**SETTINGS)
    dumps = tmp_path / "weights"
    log_path = tmp_path / "torchrun.log"
    with open(log_path, "w") as log, _torchrun(_flags(config), _env(**{DUMP_WEIGHTS_ENV: str(dumps / "ddp")}),
                                               log) as proc:
        rc = proc.wait(timeout=240)
    output = log_path.read_text()
    assert rc == 0, output

    # one run directory, named by rank 0 (no --name given), written by rank 0 alone
    (ddp,) = list(store.iterdir())
    assert output.strip().splitlines()[-1] == str(ddp)
    assert json.loads((ddp / "config.json").read_text()) == config.to_dict()
    # one progress bar for the job, not one per rank: a line per epoch
    assert len([line for line in output.splitlines() if line.startswith("epoch ")]) == config.epochs

    # every event once: no duplicates from rank 1
    events, bad = runs.read_metrics(ddp)
    assert bad == 0
    kinds = [e["type"] for e in events]
    assert kinds.count("start") == kinds.count("test") == kinds.count("end") == 1
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == list(range(1, config.epochs + 1))
    steps = [e["step"] for e in events if e["type"] in ("step", "epoch")]
    assert steps == sorted(steps) and len(set(e["step"] for e in events if e["type"] == "step")) == kinds.count("step")
    start = events[0]
    assert start["type"] == "start" and start["world_size"] == 2 and start["device"] == "cpu"
    assert start["steps_per_epoch"] == 480 // 63  # 480 training images, global batches of 63
    info = runs.read_run(ddp)
    assert info.state == "completed"
    assert info.summary["world_size"] == 2 and info.summary["device"] == "cpu"
    assert info.status["world_size"] == 2 and info.status["device"] == "cpu"

    # both ranks ended with bit-identical weights, and those are the weights rank 0 saved
    rank0, rank1 = _state_dict(dumps / "ddp" / "rank0.pt"), _state_dict(dumps / "ddp" / "rank1.pt")
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    saved = load_checkpoint(ddp / "last.pt")["state_dict"]
    assert all(torch.equal(rank0[k], saved[k]) for k in rank0)

    # the same config in one process: the same training within float rounding
    monkeypatch.setenv(DUMP_WEIGHTS_ENV, str(dumps / "one"))
    one = store.parent / "one"  # outside the store, which must keep only the torchrun run
    runs.RunWriter.create(one, config.to_dict(), state="running")
    state, _ = run(config, one)
    assert state == "completed"
    single = _state_dict(dumps / "one" / "rank0.pt")
    diff = max(float((rank0[k] - single[k]).abs().max()) for k in single)
    assert diff < WEIGHT_TOLERANCE, f"max abs weight difference {diff:g}"

    def per_epoch(path):
        return [(e["val_acc"], e["val_loss"], e["train_loss"]) for e in runs.read_metrics(path)[0]
                if e["type"] == "epoch"]
    for (acc2, val2, train2), (acc1, val1, train1) in zip(per_epoch(ddp), per_epoch(one), strict=True):
        assert acc2 == acc1  # the same predictions on every validation image
        assert val2 == pytest.approx(val1, abs=1e-4) and train2 == pytest.approx(train1, abs=1e-4)
    assert list(store.iterdir()) == [ddp]


def test_queued_two_process_job_waits_stops_and_trains_across_folds(store, tmp_path):
    """Rank 0 waits for a slot while rank 1 polls; a stop while queued ends both; the next fold then trains."""
    config = tiny_config(epochs=1, folds=2)
    slots = store / ".slots"
    slots.mkdir(parents=True)
    log_path = tmp_path / "torchrun.log"
    with open(slots / "slot-0.lock", "a+") as held, open(log_path, "w") as log:
        fcntl.flock(held, fcntl.LOCK_EX)  # another run is training: the only slot is taken
        with _torchrun([*_flags(config), "--queue", "--name", "q", "--quiet"], _env(), log) as proc:
            _wait_for_state(store / "q-fold1", "queued", proc, log_path)
            runs.request_stop(store / "q-fold1")
            _wait_for_state(store / "q-fold2", "queued", proc, log_path)
            time.sleep(2.5)  # rank 1 keeps polling rank 0 (POLL_SECONDS apart), it neither times out nor runs ahead
            assert proc.poll() is None, log_path.read_text()
            assert runs.read_run(store / "q-fold2").state == "queued"
            fcntl.flock(held, fcntl.LOCK_UN)  # the other run finished
            rc = proc.wait(timeout=240)
    assert rc == 0, log_path.read_text()
    first, second = runs.read_run(store / "q-fold1"), runs.read_run(store / "q-fold2")
    assert first.state == "stopped" and not (first.path / "last.pt").exists()
    assert second.state == "completed" and second.summary["world_size"] == 2
    assert sorted(p.name for p in store.iterdir()) == [".slots", "q-fold1", "q-fold2"]


def _wait_for_state(path, state: str, proc: subprocess.Popen, log_path, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if runs.read_run(path).status.get("state") == state:
            return
        assert proc.poll() is None, f"torchrun ended early:\n{log_path.read_text()}"
        time.sleep(0.1)
    pytest.fail(f"{path.name} never became {state}:\n{log_path.read_text()}")


def test_more_processes_than_images_per_batch_is_a_clear_error(store):
    with pytest.raises(ValueError, match="cannot be shared by 2 processes"):
        Trainer(tiny_config(batch_size=1), None, DistContext(rank=0, world_size=2))


def test_each_process_gets_its_own_device():
    assert rank_device("cpu", 3) == torch.device("cpu")
    with pytest.raises(ValueError, match="not on Apple MPS"):
        rank_device("mps", 0)
    if torch.cuda.is_available():
        assert rank_device("auto", 0) == torch.device("cuda", 0)
        with pytest.raises(RuntimeError, match="no GPU of its own"):
            rank_device("cuda", torch.cuda.device_count())
    else:
        assert rank_device("auto", 1) == torch.device("cpu")
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            rank_device("cuda", 0)
