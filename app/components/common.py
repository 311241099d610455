"""Run pickers the pages share (they read only the run store's JSON files, core.views.catalog: no torch), and the
session-state keys one page hands another something under."""

from __future__ import annotations

import streamlit as st

from core.store import runs
from core.views.catalog import list_finished_runs, run_label

# The Train page's New-run form as a whole config (TrainConfig.to_dict()) with the time it was handed over, for the
# Experiments page to start from: {"config": {...}, "at": float}
TRAIN_FORM_BASE = "train_form_as_experiment_base"


def pick_run(label: str, key: str, dataset: str | None = None, need_test_outputs: bool = True) -> runs.RunInfo | None:
    """A selectbox over finished runs; None (with a notice) when there are none."""
    options = list_finished_runs(dataset, need_test_outputs)
    if not options:
        st.info("No finished runs yet" + (f" for {dataset}" if dataset else "") + ": train one on the Train page.")
        return None
    by_path = {str(o.path): o for o in options}
    chosen = st.selectbox(label, list(by_path), format_func=lambda p: run_label(by_path[p]), key=key)
    return by_path.get(chosen)
