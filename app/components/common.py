"""View helpers shared by the pages: run pickers, cached loading, data-missing notices. Thin over core."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.data.datasets import DATASETS, get_dataset, is_available, missing_files
from core.store import runs
from core.store.checkpoint import CheckpointError, LoadedModel, load_model
from core.store.paths import DATA_ENV, data_root


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def list_finished_runs(dataset: str | None = None, need_test_outputs: bool = True) -> list[runs.RunInfo]:
    """Runs (user and pretrained) that have weights, and test outputs when asked; newest user runs first."""
    found = []
    for info in runs.list_runs(include_pretrained=True, dataset=dataset):
        if info.state in runs.ACTIVE_STATES or not info.has_weights:
            continue
        if need_test_outputs and not info.has_test_outputs:
            continue
        found.append(info)
    return found


def run_label(info: runs.RunInfo) -> str:
    """A one-line label for pickers: name, model, dataset, test accuracy, and the state when the run did not
    complete (a stopped or pruned run with weights is usable, but trained less than it was set to)."""
    acc = (info.summary or {}).get("test_acc")
    acc_text = f" · test {acc:.2%}" if isinstance(acc, (int, float)) else ""
    state_text = f" · {info.state}" if info.source == "user" and info.state != "completed" else ""
    return f"{info.label} · {info.model} · {info.dataset}{acc_text}{state_text}"


def run_table_rows(dataset: str | None = None) -> list[dict]:
    """Rows describing every finished run, for tables."""
    rows = []
    for info in list_finished_runs(dataset, need_test_outputs=False):
        summary = info.summary or {}
        rows.append({"run": info.label, "status": info.state, "dataset": info.dataset, "model": info.model,
                     "test accuracy": summary.get("test_acc"), "macro F1": summary.get("macro_f1"),
                     "parameters": summary.get("params"), "training s": summary.get("train_seconds")})
    return rows


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
    return _cached_model(str(run_dir), which, _mtime(run_dir / f"{which}.pt"))


@st.cache_data(max_entries=64, show_spinner=False)
def _cached_test_outputs(path: str, mtime: float):
    return runs.load_test_outputs(Path(path))


def cached_test_outputs(run_dir: Path):
    """(probs float32 [N,10], labels [N]) stored with a run, cached per file version."""
    run_dir = Path(run_dir)
    return _cached_test_outputs(str(run_dir), _mtime(run_dir / "test_outputs.npz"))


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
