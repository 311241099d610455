"""Where mnist-studio keeps its data and runs; each location can be moved by an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

DATA_ENV = "MNIST_STUDIO_DATA"
RUNS_ENV = "MNIST_STUDIO_RUNS"
PRETRAINED_ENV = "MNIST_STUDIO_PRETRAINED"


def data_root() -> Path:
    """Dataset root: $MNIST_STUDIO_DATA, else ./data (relative to the working directory)."""
    return Path(os.environ.get(DATA_ENV) or "./data").expanduser().resolve()


def runs_root() -> Path:
    """User runs: $MNIST_STUDIO_RUNS, else checkpoints/runs in the repository (git-ignored)."""
    return Path(os.environ.get(RUNS_ENV) or REPO_ROOT / "checkpoints" / "runs").expanduser().resolve()


def pretrained_root() -> Path:
    """Shipped pretrained runs: $MNIST_STUDIO_PRETRAINED, else checkpoints/pretrained (tracked)."""
    default = REPO_ROOT / "checkpoints" / "pretrained"
    return Path(os.environ.get(PRETRAINED_ENV) or default).expanduser().resolve()
