"""Run listing and pickers the pages share; reads only the run store's JSON files, so it never imports torch."""

from __future__ import annotations

import streamlit as st

from core.store import runs


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
    """A one-line label for pickers: name, model, dataset, test accuracy."""
    acc = (info.summary or {}).get("test_acc")
    acc_text = f" · test {acc:.2%}" if isinstance(acc, (int, float)) else ""
    return f"{info.label} · {info.model} · {info.dataset}{acc_text}"


def run_table_rows(dataset: str | None = None) -> list[dict]:
    """Rows describing every finished run, for tables."""
    rows = []
    for info in list_finished_runs(dataset, need_test_outputs=False):
        summary = info.summary or {}
        rows.append({"run": info.label, "dataset": info.dataset, "model": info.model,
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
