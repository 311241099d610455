import json
import subprocess
import sys

import numpy as np
import pytest

from core.store import runs
from core.training.optim import lr_at
from core.training.session import run
from tests.conftest import REPO, tiny_config


def _run(store, name="r", **overrides):
    config = tiny_config(**overrides)
    path = store / name
    runs.RunWriter.create(path, config.to_dict(), state="running")
    state, summary = run(config, path)
    return path, state, summary


def test_a_run_writes_every_file_of_the_store(store):
    path, state, summary = _run(store)
    assert state == "completed"
    for name in ("config.json", "metrics.jsonl", "status.json", "best.pt", "last.pt", "test_outputs.npz",
                 "summary.json"):
        assert (path / name).is_file(), name
    info = runs.read_run(path)
    assert info.state == "completed" and info.summary["epochs"] == 2 and 0 <= info.summary["test_acc"] <= 1
    events, bad = runs.read_metrics(path)
    epochs = [e for e in events if e["type"] == "epoch"]
    assert bad == 0 and [e["epoch"] for e in epochs] == [1, 2]
    assert np.array(epochs[-1]["val_confusion"]).sum() == 120  # 20% of 600 validation images
    with np.load(path / "test_outputs.npz") as out:
        assert out["probs"].shape == (200, 10) and out["probs"].dtype == np.float16
        assert np.allclose(out["probs"].astype(np.float32).sum(1), 1, atol=1e-2)


def test_the_tiny_task_is_learned(store):
    _, _, summary = _run(store, epochs=4)
    assert summary["test_acc"] > 0.9  # the synthetic classes are easy; chance is 0.1


def test_same_seed_gives_identical_metrics(store):
    def epoch_metrics(name):
        path, _, _ = _run(store, name, model="fast", precision="fp32", translate=2, hflip=True)
        return [(e["train_loss"], e["val_loss"], e["val_acc"]) for e in runs.read_metrics(path)[0]
                if e["type"] == "epoch"]
    assert epoch_metrics("a") == epoch_metrics("b")


def test_stop_request_ends_the_run_as_stopped_and_resume_finishes_it(store):
    config = tiny_config(epochs=3)
    path = store / "s"
    runs.RunWriter.create(path, config.to_dict(), state="running")
    runs.request_stop(path)
    state, _ = run(config, path)
    assert state == "stopped" and runs.read_run(path).state == "stopped"
    assert not runs.stop_requested(path)
    state, summary = run(config, path, resume=True)
    assert state == "completed" and summary["epochs"] == 3


def test_resume_after_an_interrupted_epoch_matches_an_uninterrupted_run(store):
    whole, _, _ = _run(store, "whole", epochs=3)
    config = tiny_config(epochs=3)
    part = store / "part"
    runs.RunWriter.create(part, tiny_config(epochs=1).to_dict(), state="running")
    run(tiny_config(epochs=1), part)  # one epoch done: last.pt written, as if killed during epoch 2
    (part / "config.json").write_text(json.dumps(config.to_dict()))
    with open(part / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"type": "step", "epoch": 2, "step": 999, "loss": 9.9}) + "\n")
    run(config, part, resume=True)
    accs = [[e["val_acc"] for e in runs.read_metrics(p)[0] if e["type"] == "epoch"] for p in (whole, part)]
    assert accs[0] == accs[1]
    assert not [e for e in runs.read_metrics(part)[0] if e.get("step") == 999]  # the half epoch was dropped


def test_huge_learning_rate_diverges_with_an_explanation(store):
    path, state, _ = _run(store, lr=100.0, optimizer="sgd")
    status = runs.read_run(path).status
    assert state == "diverged" and status["state"] == "diverged"
    assert "nan" in status["error"].lower() or "inf" in status["error"].lower()
    assert "learning rate" in status["hint"]
    text = (path / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text


def test_onecycle_warms_up_then_anneals_to_zero():
    config = tiny_config(schedule="onecycle", lr=1.0, warmup=0.2)
    lrs = [lr_at(s, 100, config) for s in range(101)]
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(1.0) and lrs[100] == pytest.approx(0.0)
    assert lrs.index(max(lrs)) == 20


def test_cli_trains_prints_the_run_dir_last_and_evaluates(store):
    env = {**__import__("os").environ}
    out = subprocess.run([sys.executable, "-m", "core.train", "--dataset", "mnist", "--model", "linear",
                          "--epochs", "1", "--batch-size", "32", "--name", "cli-run", "--quiet"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    run_dir = out.stdout.strip().splitlines()[-1]
    assert run_dir.endswith("cli-run") and (store / "cli-run" / "summary.json").is_file()
    ev = subprocess.run([sys.executable, "-m", "core.evaluate", run_dir, "--json"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=120)
    result = json.loads(ev.stdout)
    assert result["test_acc"] == json.loads((store / "cli-run" / "summary.json").read_text())["test_acc"]
    assert len(result["per_class"]) == 10 and np.array(result["confusion"]).sum() == 200


@pytest.mark.parametrize("flags,message", [
    (["--lr", "-1"], "lr must be > 0, got -1"),
    (["--epochs", "nan"], "epochs: expected a whole number"),
    (["--batch-size", "0"], "batch_size must be >= 1"),
    (["--model", "vgg"], "model must be one of"),
    (["--name", "../escape"], "invalid run name"),
])
def test_cli_refuses_bad_values_with_a_message(store, flags, message):
    out = subprocess.run([sys.executable, "-m", "core.train", "--dataset", "mnist", *flags], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and message in out.stderr
    assert not store.exists() or not any(store.iterdir())


def test_help_explains_every_flag():
    out = subprocess.run([sys.executable, "-m", "core.train", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "--label-smoothing" in out.stdout and "--preset" in out.stdout
    assert "(default: None)" not in out.stdout and "(default: 0.0)" in out.stdout  # each setting's own default


@pytest.mark.slow
def test_the_fast_net_reaches_98_5_percent_on_real_mnist_in_one_epoch(store, real_data_root, monkeypatch):
    """The core engine's acceptance check: `python -m core.train --dataset mnist --model fast --epochs 1`."""
    monkeypatch.setenv("MNIST_STUDIO_DATA", str(real_data_root))
    out = subprocess.run([sys.executable, "-m", "core.train", "--dataset", "mnist", "--model", "fast", "--epochs", "1",
                          "--name", "acceptance", "--quiet"], cwd=REPO, env={**__import__("os").environ},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(store / "acceptance")
    summary = json.loads((store / "acceptance" / "summary.json").read_text())
    probs = np.load(store / "acceptance" / "test_outputs.npz")
    assert probs["probs"].shape == (10_000, 10)
    assert summary["epochs"] == 1 and summary["test_acc"] >= 0.985, summary


def test_cli_refuses_to_resume_without_last_pt_or_to_retrain_a_finished_run(store, capsys):
    from core import train
    from tests.test_shipped_readonly import snapshot

    fresh = store / "fresh"
    runs.RunWriter.create(fresh, tiny_config().to_dict(), state="stopped")
    done, _, _ = _run(store, "done", epochs=1, limit_batches=2)
    before = snapshot(store)
    for argv, message in [(["--resume", str(fresh)], "has no last.pt to continue from"),
                          (["--resume", str(done)], "has completed"), (["--start", str(done)], "has completed")]:
        assert train.main([*argv, "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert snapshot(store) == before


def test_cli_reports_unreadable_data_in_one_line_and_marks_the_run_failed(store, tmp_path, tiny_data_root,
                                                                          monkeypatch, capsys):
    """A damaged dataset file (no download is tried for files that are present) ends the command with one line,
    exit status 1, and the run it had created marked failed with that message, ready to be resumed once fixed."""
    import shutil

    from core import train

    data = tmp_path / "damaged"
    shutil.copytree(tiny_data_root / "MNIST", data / "MNIST")
    (data / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04 not an idx file")
    monkeypatch.setenv("MNIST_STUDIO_DATA", str(data))
    monkeypatch.setenv("MNIST_STUDIO_AUTO_PROJECTION", "0")
    assert train.main(["--dataset", "mnist", "--model", "linear", "--epochs", "1", "--name", "no-data", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "MNIST" in err[0] and "unreadable files" in err[0], err
    info = runs.read_run(store / "no-data")
    assert info.state == "failed" and "unreadable files" in runs.read_json(store / "no-data" / "status.json")["error"]
