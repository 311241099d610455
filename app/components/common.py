"""Run pickers the pages share; they read only the run store's JSON files (core.views.catalog): no torch."""

from __future__ import annotations

import streamlit as st

from core.store import runs
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
