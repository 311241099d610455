"""core.analysis.projection_job: a run's map made once, in the background, after training or on demand."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from core import train
from core.analysis import projection, projection_job
from core.store import runs
from tests.conftest import tiny_config


def wait_for(run_dir: Path, timeout: float = 240) -> projection_job.JobState:
    """The job's state once it is no longer running (generous: UMAP compiles on a loaded 2-core machine)."""
    deadline = time.time() + timeout
    job = projection_job.state(run_dir)
    while job.state == "running" and time.time() < deadline:
        time.sleep(0.3)
        job = projection_job.state(run_dir)
    return job


def tiny_cli_args(name: str) -> list[str]:
    args = []
    for key, value in tiny_config().to_dict().items():
        if key in ("dataset", "model", "epochs", "batch_size", "lr", "threads", "precision"):
            args += [f"--{key.replace('_', '-')}", str(value)]
    return [*args, "--name", name, "--quiet"]


def test_training_ends_first_and_its_map_starts_in_the_background_once(store, monkeypatch):
    monkeypatch.setenv(projection_job.AUTO_ENV, "1")
    assert train.main(tiny_cli_args("mapped")) == 0
    run = store / "mapped"
    assert runs.read_run(run).state == "completed"  # the run is done before its map is
    assert projection_job.state(run).state == "running"  # (UMAP alone takes seconds to import)
    assert projection_job.start(run) is False  # claimed: never two processes for one run
    deadline = time.time() + 60
    while "pid" not in (runs.read_json(run / projection_job.PROGRESS_NAME) or {}) and time.time() < deadline:
        time.sleep(0.1)
    progress = runs.read_json(run / projection_job.PROGRESS_NAME)
    assert progress["state"] == "running" and 0 <= progress["fraction"] < 1
    # the rest of the job runs in the Evaluate page's test; here it is killed, as a crash would end it
    os.kill(progress["pid"], signal.SIGKILL)
    job = wait_for(run, timeout=30)
    assert job.state == "failed" and "ended before" in job.error
    assert runs.read_run(run).state == "completed" and not (run / projection.FILE_NAME).exists()


def test_a_failed_map_says_why_in_one_line_and_leaves_the_run_as_it_was(store, tmp_path, monkeypatch):
    run = store / "no-data"
    runs.RunWriter.create(run, tiny_config().to_dict(), state="running")
    from core.training import session

    assert session.run(tiny_config(), run)[0] == "completed"
    status = (run / "status.json").read_bytes()
    monkeypatch.setenv("MNIST_STUDIO_DATA", str(tmp_path / "empty"))  # the child cannot read the test images
    assert projection_job.start(run) is True
    job = wait_for(run, timeout=120)
    assert job.state == "failed" and "\n" not in job.error and job.error
    assert not (run / projection.FILE_NAME).exists()
    assert (run / "status.json").read_bytes() == status


def test_shipped_runs_are_never_written(store, tmp_path):
    shipped = tmp_path / "pretrained" / "mnist-x"
    shipped.mkdir(parents=True)
    (shipped / "best.pt").write_bytes(b"weights")
    assert projection_job.state(shipped).state == "none"
    assert projection_job.start(shipped) is False
    assert projection_job.main([str(shipped)]) == 1
    assert sorted(p.name for p in shipped.iterdir()) == ["best.pt"]


@pytest.mark.parametrize("scale", [1.0, 1e6])
def test_maps_are_stored_compactly_and_reload_as_float32(tmp_path, scale):
    rng = np.random.default_rng(0)
    coords = {"pca": rng.normal(size=(1000, 2)).astype(np.float32) * scale,
              "umap": rng.normal(size=(1000, 2)).astype(np.float32)}
    saved = projection.Projection(coords, np.zeros(1000, np.int64), np.zeros(1000, np.int64),
                                  np.zeros(4, np.float32), np.eye(2, 4, dtype=np.float32))
    projection.save(tmp_path, saved)
    with np.load(tmp_path / projection.FILE_NAME) as raw:
        assert raw["coords_umap"].dtype == np.float16
        assert raw["coords_pca"].dtype == (np.float16 if scale == 1.0 else np.float32)  # too big for float16
    loaded = projection.load(tmp_path)
    for method in ("pca", "umap"):
        assert loaded.coords[method].dtype == np.float32
        np.testing.assert_allclose(loaded.coords[method], coords[method], rtol=1e-3, atol=1e-3)

