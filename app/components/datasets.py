"""The dataset picker and the notice that says what data is missing and where the app looks for it."""

from __future__ import annotations

import streamlit as st

from core.data.datasets import DATASETS, get_dataset, is_available, missing_files
from core.store.paths import DATA_ENV, data_root


def dataset_picker(key: str, label: str = "Dataset") -> str:
    """A radio over the known datasets, by title."""
    return st.radio(label, list(DATASETS), format_func=lambda n: DATASETS[n].title, key=key, horizontal=True)


def data_missing_notice(dataset: str) -> bool:
    """Show what is missing and where the app looks; True when the dataset is NOT available."""
    if is_available(dataset):
        return False
    spec = get_dataset(dataset)
    missing = ", ".join(p.name for p in missing_files(dataset))
    st.warning(f"**{spec.title}** is not on this machine yet. The app looks in `{data_root()}` "
               f"(set by `{DATA_ENV}`) for `{spec.folder}/raw`; missing: {missing}.")
    return True
