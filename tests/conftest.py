"""Shared fixtures: a tiny dataset in real IDX files, an isolated run store, and the real-data switch."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from tests.idx import write_dataset

torch.set_num_threads(1)  # tiny test models gain nothing from threads, and the suite shares 2 cores
# no map of the test images starts by itself (after training, on Evaluate): tests that want one switch it on
os.environ["MNIST_STUDIO_AUTO_PROJECTION"] = "0"

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = os.environ.get("MNIST_STUDIO_DATA")
REQUIRE_REAL = os.environ.get("MNIST_STUDIO_REQUIRE_REAL") == "1"


def require_or_skip(condition: bool, reason: str) -> None:
    """Skip when `condition` fails, except in CI (MNIST_STUDIO_REQUIRE_REAL=1) where it is a failure."""
    if not condition:
        if REQUIRE_REAL:
            pytest.fail(f"required in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory) -> Path:
    """MNIST and Fashion-MNIST stand-ins: 600 train and 200 test synthetic images each, as IDX files."""
    root = tmp_path_factory.mktemp("data")
    write_dataset(root, "MNIST")
    write_dataset(root, "FashionMNIST")
    return root


@pytest.fixture
def store(tmp_path, monkeypatch, tiny_data_root) -> Path:
    """An empty user run store and the tiny data, through the same environment variables the app reads."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("MNIST_STUDIO_RUNS", str(runs))
    monkeypatch.setenv("MNIST_STUDIO_DATA", str(tiny_data_root))
    monkeypatch.setenv("MNIST_STUDIO_PRETRAINED", str(tmp_path / "pretrained"))
    return runs


@pytest.fixture
def real_data_root() -> Path:
    """The real datasets ($MNIST_STUDIO_DATA), or a skip (a failure in CI) when they are not there."""
    from core.data.datasets import is_available

    root = Path(REAL_DATA).resolve() if REAL_DATA else None
    require_or_skip(root is not None and is_available("mnist", root) and is_available("fashion-mnist", root),
                    "the real datasets are not under $MNIST_STUDIO_DATA")
    return root


@pytest.fixture(scope="session")
def mnist_pretrained(tmp_path_factory, tiny_data_root) -> tuple[Path, bool]:
    """A pretrained-runs folder holding one finished MNIST run `mnist-fast`, and whether it knows real digits.

    The shipped checkpoints/pretrained/mnist-fast when present; else the fast net trained one epoch on
    12,000 real MNIST images (when $MNIST_STUDIO_DATA has them); else on the tiny synthetic data.
    """
    import shutil

    from core.data.datasets import is_available
    from core.store import runs
    from core.training import session as train
    from core.training.presets import get_preset

    root = tmp_path_factory.mktemp("pretrained")
    shipped = REPO / "checkpoints" / "pretrained" / "mnist-fast"
    if (shipped / "best.pt").is_file() and (shipped / "config.json").is_file():
        shutil.copytree(shipped, root / "mnist-fast")
        return root, True
    real = bool(REAL_DATA) and is_available("mnist", Path(REAL_DATA))
    config = get_preset("fast").config("mnist", subset=12000, threads=1) if real else tiny_config(model="fast")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNIST_STUDIO_DATA", str(Path(REAL_DATA).resolve() if real else tiny_data_root))
        runs.RunWriter.create(root / "mnist-fast", config.to_dict(), state="running")
        train.run(config, root / "mnist-fast")
    return root, real


def wait_for(what: str, predicate, timeout: float = 120.0, poll: float = 0.05):
    """predicate()'s first truthy value, polled until `timeout` seconds (a child imports torch first: seconds
    on a busy 2-core machine); an AssertionError naming `what` after that."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def tiny_config(**overrides):
    """A TrainConfig that trains in about a second on the tiny data."""
    from core.training.config import TrainConfig

    values = {"dataset": "mnist", "model": "cnn2", "epochs": 2, "batch_size": 64, "optimizer": "adam",
              "lr": 3e-3, "schedule": "constant", "val_fraction": 0.2, "threads": 1, "precision": "fp32"}
    return TrainConfig.from_dict({**values, **overrides})


def open_page(page: str, timeout: float = 60):
    """An AppTest of the whole app (router included) switched to `page`, e.g. "app/train.py", run once."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=timeout)
    at.run()
    if page != "app/home.py":
        at.switch_page(page)
        at.run()
    return at


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server (Debian's package) on a free local port, trust auth, stopped afterwards;
    its SQLAlchemy URL. Run as the `postgres` user when the suite runs as root (the server refuses root)."""
    import glob
    import shutil
    import socket
    import subprocess
    import tempfile

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    require_or_skip(bool(found), "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb)")
    bindir = Path(found[-1]).parent
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="mnist-studio-postgres-"))  # not under pytest's root-only tmp dirs
    if as_user:
        shutil.chown(root, "postgres", "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = root / "data"
    subprocess.run([*as_user, bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-N"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, bindir / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def experiments(store, tmp_path, monkeypatch) -> Path:
    """An empty experiment store beside the `store` fixture's run store ($MNIST_STUDIO_EXPERIMENTS)."""
    root = tmp_path / "experiments"
    monkeypatch.setenv("MNIST_STUDIO_EXPERIMENTS", str(root))
    return root


TINY_SWEEP_BASE = ["--dataset", "mnist", "--model", "cnn2", "--epochs", "1", "--batch-size", "64", "--optimizer",
                   "adam", "--lr", "0.003", "--schedule", "constant", "--val-fraction", "0.2", "--threads", "1",
                   "--precision", "fp32", "--limit-batches", "3"]
