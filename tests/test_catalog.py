"""The finished-run listing, picker labels and table rows the pages show (core.views.catalog)."""

import os
import sys
import time

import numpy as np

from core.store import atomic
from core.views import catalog


def finished(root, name, dataset="mnist", state="completed", weights=True, outputs=True, summary=None, created=0.0):
    """A run directory as training leaves it (weights and outputs as files; their content is not read here).
    Written file by file: the run writer refuses the pretrained folder, which only bench/make_pretrained.py fills."""
    (root / name).mkdir(parents=True)
    atomic.write_json(root / name / "config.json", {"dataset": dataset, "model": "fast"})
    status = {"state": state, "created": created, "updated": created}
    if state == "running":
        status.update(pid=os.getpid(), heartbeat=time.time())
    atomic.write_json(root / name / "status.json", status)
    if weights:
        (root / name / "best.pt").write_bytes(b"weights")
    if outputs:
        atomic.write_npz(root / name / "test_outputs.npz", probs=np.eye(3, 10, dtype=np.float16),
                         labels=np.arange(3, dtype=np.uint8))
    if summary is not None:
        atomic.write_json(root / name / "summary.json", summary)
    return root / name


def test_finished_runs_have_weights_are_not_active_and_come_newest_first(store, tmp_path):
    old = finished(store, "old", summary={"test_acc": 0.9}, created=100.0)
    new = finished(store, "new", summary={"test_acc": 0.95}, created=200.0)
    finished(store, "no-weights", weights=False, created=300.0)
    finished(store, "no-outputs", outputs=False, created=400.0)
    finished(store, "fashion", dataset="fashion-mnist", created=500.0)
    finished(store, "live", state="running", created=600.0)  # its pid (ours) is alive: still training
    shipped = finished(tmp_path / "pretrained", "shipped", summary={"test_acc": 0.99})

    assert [r.path for r in catalog.list_finished_runs("mnist")] == [new, old, shipped]
    assert [r.name for r in catalog.list_finished_runs("mnist", need_test_outputs=False)] == \
        ["no-outputs", "new", "old", "shipped"]
    assert {r.name for r in catalog.list_finished_runs()} == {"fashion", "new", "old", "shipped"}


def test_labels_and_table_rows_say_what_each_run_is(store, tmp_path):
    finished(store, "mine", summary={"test_acc": 0.9123, "macro_f1": 0.9, "params": 1234, "train_seconds": 5.5},
             created=1.0)
    finished(store, "junk-summary", summary={"test_acc": "high"}, created=2.0)
    finished(tmp_path / "pretrained", "shipped", summary={"test_acc": True})
    labels = [catalog.run_label(r) for r in catalog.list_finished_runs()]
    assert labels == ["junk-summary · fast · mnist", "mine · fast · mnist · test 91.23%",
                      "pretrained/shipped · fast · mnist"]
    rows = catalog.run_table_rows("mnist")
    assert rows[1] == {"run": "mine", "status": "completed", "dataset": "mnist", "model": "fast",
                       "test accuracy": 0.9123, "macro F1": 0.9,
                       "parameters": 1234, "training s": 5.5}


def test_the_catalog_needs_neither_torch_nor_streamlit():
    """The Home page lists runs through it before any page imports torch (see README, cold start)."""
    import subprocess

    code = ("import sys, core.views.catalog; "
            "print(sorted(m for m in ('torch', 'streamlit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
