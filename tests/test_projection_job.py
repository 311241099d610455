"""core.analysis.projection_job: a run's map made once, in the background, after training or on demand."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from core import train
from core.analysis import projection, projection_job
from core.store import atomic, runs
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


def test_training_ends_first_and_the_map_follows_in_the_background_once(store, monkeypatch, capsys):
    monkeypatch.setenv(projection_job.AUTO_ENV, "1")
    assert train.main(tiny_cli_args("mapped")) == 0
    run = store / "mapped"
    assert runs.read_run(run).state == "completed"  # the run is done before its map is
    job = projection_job.state(run)
    if job.state == "running":
        assert 0.0 <= job.fraction < 1.0 and job.stage
        assert projection_job.start(run) is False  # claimed: never two processes for one run
    job = wait_for(run)
    assert job.state == "done", job
    made = projection.load(run)
    labels = runs.load_test_outputs(run)[1]
    assert made.coords["umap"].shape == made.coords["pca"].shape == (len(labels), 2)
    np.testing.assert_array_equal(made.labels, labels)
    assert runs.read_json(run / projection_job.PROGRESS_NAME)["state"] == "done"
    assert runs.read_run(run).state == "completed"
    assert projection_job.start(run) is False  # it has one now


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


def test_a_job_that_died_reads_as_failed_and_shipped_runs_are_never_written(store, tmp_path, monkeypatch):
    run = store / "died"
    run.mkdir(parents=True)
    assert projection_job.state(run).state == "none"
    atomic.write_json(run / projection_job.PROGRESS_NAME, {"state": "running", "stage": "umap", "fraction": 0.5})
    job = projection_job.state(run)  # nobody holds the claim: the process is gone
    assert job.state == "failed" and "ended before" in job.error
    shipped = tmp_path / "pretrained" / "mnist-x"
    shipped.mkdir(parents=True)
    (shipped / "best.pt").write_bytes(b"weights")
    before = sorted(p.name for p in shipped.iterdir())
    assert projection_job.start(shipped) is False
    assert projection_job.main([str(shipped)]) == 1
    assert sorted(p.name for p in shipped.iterdir()) == before


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

