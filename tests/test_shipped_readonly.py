"""Shipped pretrained runs are read-only everywhere: every command-line and page action against one leaves its
files unchanged, byte for byte, and adds nothing to the pretrained folder."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from core import evaluate, predict, train
from core.store import launcher, runs
from tests.conftest import REPO, open_page, tiny_config

SHIPPED = REPO / "checkpoints" / "pretrained" / "mnist-linear"


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `root`."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


@pytest.fixture
def shipped(store) -> Path:
    """A temporary pretrained folder ($MNIST_STUDIO_PRETRAINED) holding a shipped run, `mnist-linear`, and a copy
    of it without its stored test outputs, `mnist-linear-bare` (which evaluating would compute)."""
    if not (SHIPPED / "best.pt").is_file():
        pytest.skip("the shipped run checkpoints/pretrained/mnist-linear is not in this checkout")
    root = runs.pretrained_root()
    shutil.copytree(SHIPPED, root / "mnist-linear")
    shutil.copytree(SHIPPED, root / "mnist-linear-bare")
    (root / "mnist-linear-bare" / "test_outputs.npz").unlink()
    return root


def test_the_resume_of_the_issue_is_refused_in_one_line(shipped):
    before = snapshot(shipped)
    out = subprocess.run([sys.executable, "-m", "core.train", "--resume", "mnist-linear", "--quiet"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)  # a loaded 2-core machine imports torch slowly
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "python -m core.train: error: run mnist-linear is a shipped pretrained run and read-only; "
        "train a new run instead"]
    assert snapshot(shipped) == before


def test_every_command_line_action_leaves_a_shipped_run_unchanged(shipped, tmp_path, monkeypatch, capsys):
    before = snapshot(shipped)
    path, bare = shipped / "mnist-linear", shipped / "mnist-linear-bare"
    image = tmp_path / "seven.png"
    img = Image.new("L", (28, 28))
    ImageDraw.Draw(img).line([(6, 6), (21, 6), (11, 23)], fill=255, width=3)
    img.save(image)
    refused = [  # python -m core.train ... (main is what the command runs)
        ["--resume", "mnist-linear"], ["--resume", str(path)], ["--resume", str(bare)],
        ["--start", "mnist-linear"], ["--start-run", str(bare)],
        ["--dataset", "mnist", "--model", "linear", "--epochs", "1", "--runs-dir", str(shipped), "--name", "intruder"],
        ["--dataset", "mnist", "--model", "linear", "--epochs", "1", "--runs-dir", str(shipped),
         "--name", "mnist-linear"],
    ]
    for argv in refused:
        assert train.main([*argv, "--quiet"]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ("read-only" in err[0] or "already holds a run" in err[0]), (argv, err)
    assert evaluate.main(["mnist-linear", "--json"]) == 0
    assert evaluate.main(["mnist-linear-bare", "--json"]) == 0  # computed from best.pt, not stored
    assert '"test_acc"' in capsys.readouterr().out
    assert predict.main(["--run", str(path), str(image)]) == 0
    assert snapshot(shipped) == before


def test_every_launcher_and_store_action_of_the_pages_leaves_a_shipped_run_unchanged(shipped, monkeypatch):
    before = snapshot(shipped)
    path = shipped / "mnist-linear"
    info = runs.read_run(path)
    assert info.source == "pretrained" and launcher.can_resume(info) == "shipped pretrained runs are read-only"
    with pytest.raises(RuntimeError, match="read-only"):
        launcher.resume_run(path)
    for action in (launcher.stop_run, launcher.delete_run, runs.delete_run, runs.request_stop,
                   runs.clear_stop_request, runs.RunWriter):
        with pytest.raises(runs.ReadOnlyRunError, match="read-only"):
            action(path)
    with pytest.raises(runs.ReadOnlyRunError):
        runs.RunWriter.create(shipped / "intruder", tiny_config().to_dict())
    monkeypatch.setenv("MNIST_STUDIO_RUNS", str(shipped))  # a runs folder set to the pretrained one
    with pytest.raises(runs.ReadOnlyRunError):
        launcher.start_run(tiny_config(), name="intruder")
    with pytest.raises(FileExistsError):
        launcher.start_run(tiny_config(), name="mnist-linear")
    evaluate.evaluate_run(shipped / "mnist-linear-bare")
    assert snapshot(shipped) == before


def test_every_page_leaves_a_shipped_run_unchanged(shipped):
    before = snapshot(shipped)
    for page in ("home", "train", "data", "evaluate", "predict", "compare"):
        at = open_page(f"app/{page}.py")
        assert not at.exception, (page, at.exception)
        if page == "evaluate":
            assert "mnist-linear" in str([w.value for w in at.selectbox] + [w.options for w in at.selectbox])
    assert snapshot(shipped) == before
