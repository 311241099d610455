"""The finished runs the pages offer (pickers, the Home table), from the run store's JSON files alone.

No torch and no Streamlit here: listing runs reads config.json, status.json and summary.json and checks
which weight and output files exist.
"""

from __future__ import annotations

from core.store import runs


def list_finished_runs(dataset: str | None = None, need_test_outputs: bool = True) -> list[runs.RunInfo]:
    """Runs (user and pretrained) that are not active and have weights, and test outputs when asked;
    newest user runs first, then the pretrained ones by name."""
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
    acc_text = f" · test {acc:.2%}" if isinstance(acc, (int, float)) and not isinstance(acc, bool) else ""
    state_text = f" · {info.state}" if info.source == "user" and info.state != "completed" else ""
    return f"{info.label} · {info.model} · {info.dataset}{acc_text}{state_text}"


def run_table_rows(dataset: str | None = None) -> list[dict]:
    """One row per finished run (test outputs or not), for tables."""
    rows = []
    for info in list_finished_runs(dataset, need_test_outputs=False):
        summary = info.summary or {}
        rows.append({"run": info.label, "status": info.state, "dataset": info.dataset, "model": info.model,
                     "test accuracy": summary.get("test_acc"), "macro F1": summary.get("macro_f1"),
                     "parameters": summary.get("params"), "training s": summary.get("train_seconds")})
    return rows
