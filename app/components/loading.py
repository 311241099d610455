"""Cached loading for the pages: models, stored test outputs and dataset splits, shared across sessions."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.store import runs
from core.store.checkpoint import CheckpointError, LoadedModel, load_model
from core.store.paths import data_root


@st.cache_resource(max_entries=32, show_spinner=False)
def _cached_model(path: str, which: str, mtime: float) -> LoadedModel:
    return load_model(Path(path), which)


def cached_model(run_dir: Path, which: str = "best") -> LoadedModel:
    """A run's model for inference, shared across sessions (never train or change it); CheckpointError on failure."""
    run_dir = Path(run_dir)
    return _cached_model(str(run_dir), which, runs.mtime(run_dir / f"{which}.pt"))


def show_checkpoint_error(err: CheckpointError) -> None:
    st.error(f"This model cannot be loaded: {err}")


@st.cache_data(max_entries=64, show_spinner=False)
def _cached_test_outputs(path: str, mtime: float):
    return runs.load_test_outputs(Path(path))


def cached_test_outputs(run_dir: Path):
    """(probs float32 [N,10], labels [N]) stored with a run, cached per file version."""
    run_dir = Path(run_dir)
    return _cached_test_outputs(str(run_dir), runs.mtime(run_dir / "test_outputs.npz"))


@st.cache_data(max_entries=4, show_spinner=False)
def _cached_split(name: str, train: bool, root: str):
    from core.data.datasets import load_split

    images, labels = load_split(name, train=train, root=Path(root), download=False)
    return images.numpy(), labels.numpy()


def cached_split(name: str, train: bool):
    """(images uint8 [N,28,28], labels) as numpy, cached; raises DataUnavailableError when missing."""
    return _cached_split(name, train, str(data_root()))
