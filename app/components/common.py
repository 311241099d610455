"""View helpers shared by the pages: run pickers, cached loading, data-missing notices. Thin over core
(the run listing and labels are core.views.catalog)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.data.datasets import DATASETS, get_dataset, is_available, missing_files
from core.store import runs
from core.store.checkpoint import CheckpointError, LoadedModel, load_model
from core.store.paths import DATA_ENV, data_root
from core.views.catalog import list_finished_runs, run_label


def pick_run(label: str, key: str, dataset: str | None = None, need_test_outputs: bool = True) -> runs.RunInfo | None:
    """A selectbox over finished runs; None (with a notice) when there are none."""
    options = list_finished_runs(dataset, need_test_outputs)
    if not options:
        st.info("No finished runs yet" + (f" for {dataset}" if dataset else "") + ": train one on the Train page.")
        return None
    by_path = {str(o.path): o for o in options}
    chosen = st.selectbox(label, list(by_path), format_func=lambda p: run_label(by_path[p]), key=key)
    return by_path.get(chosen)


@st.cache_resource(max_entries=32, show_spinner=False)
def _cached_model(path: str, which: str, mtime: float) -> LoadedModel:
    return load_model(Path(path), which)


def cached_model(run_dir: Path, which: str = "best") -> LoadedModel:
    """A run's model for inference, shared across sessions (never train or change it); CheckpointError on failure."""
    run_dir = Path(run_dir)
    return _cached_model(str(run_dir), which, runs.mtime(run_dir / f"{which}.pt"))


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


def data_missing_notice(dataset: str) -> bool:
    """Show what is missing and where the app looks; True when the dataset is NOT available."""
    if is_available(dataset):
        return False
    spec = get_dataset(dataset)
    missing = ", ".join(p.name for p in missing_files(dataset))
    st.warning(f"**{spec.title}** is not on this machine yet. The app looks in `{data_root()}` "
               f"(set by `{DATA_ENV}`) for `{spec.folder}/raw`; missing: {missing}.")
    return True


def dataset_picker(key: str, label: str = "Dataset") -> str:
    """A radio over the known datasets, by title."""
    return st.radio(label, list(DATASETS), format_func=lambda n: DATASETS[n].title, key=key, horizontal=True)


def show_checkpoint_error(err: CheckpointError) -> None:
    st.error(f"This model cannot be loaded: {err}")
