"""Tests for core.comparison_view on hand-made runs, events and outputs."""

import numpy as np
import pytest

from core.analysis.compare import comparison_csv
from core.store import atomic
from core.views import comparison as cv

CLASSES = ["cat", "dog", "owl"]


def report(labels, preds):
    probs = np.eye(3)[preds]
    return cv.outputs_report(probs, labels, CLASSES)


LABELS = [0, 0, 0, 1, 1, 2, 2, 2]
REPORT_A = report(LABELS, [0, 1, 1, 1, 1, 2, 0, 0])  # right on 0, 3, 4, 5: 4 of 8
REPORT_B = report(LABELS, [0, 0, 0, 1, 0, 2, 2, 1])  # right on 0, 1, 2, 3, 5, 6: 6 of 8


def test_table_row_takes_accuracy_from_outputs_and_the_rest_from_the_summary():
    summary = {"test_acc": 0.1, "macro_f1": 0.1, "params": 1234, "train_seconds": 12.5, "epochs": 3}
    row = cv.table_row("a", "mlp", summary, REPORT_B, size_bytes=2_500_000, latency={"p50_ms": 1.5, "p95_ms": 2.0})
    assert row == {"run": "a", "model": "mlp", "test accuracy": 0.75, "macro F1": REPORT_B["macro"]["f1"],
                   "parameters": 1234, "training s": 12.5, "epochs": 3, "size MB": 2.5,
                   "latency p50 ms": 1.5, "latency p95 ms": 2.0}
    assert list(row) == list(cv.COLUMNS)


def test_table_row_without_outputs_or_with_junk_leaves_cells_empty():
    row = cv.table_row("b", None, {"test_acc": 0.9, "params": "many", "train_seconds": float("nan"),
                                   "epochs": True})
    assert row["test accuracy"] == 0.9 and row["model"] == "?"
    assert row["parameters"] is row["training s"] is row["epochs"] is row["size MB"] is None
    assert row["latency p50 ms"] is None
    assert cv.table_row("c", "x", None)["test accuracy"] is None


def test_best_mask_marks_best_per_ranked_column_with_ties():
    table = [
        {"test accuracy": 0.9, "parameters": 100, "epochs": 5, "latency p50 ms": None},
        {"test accuracy": 0.95, "parameters": 100, "epochs": 9, "latency p50 ms": 3.0},
        {"test accuracy": None, "parameters": 50_000, "epochs": 1, "latency p50 ms": 4.0},
    ]
    mask = cv.best_mask(table)
    assert [m["test accuracy"] for m in mask] == [False, True, False]
    assert [m["parameters"] for m in mask] == [True, True, False]  # fewer is better, ties both marked
    assert [m["latency p50 ms"] for m in mask] == [False, True, False]
    assert [m["training s"] for m in mask] == [False, False, False]  # column with no values
    assert all("epochs" not in m for m in mask)  # not ranked


def test_default_pair_is_worst_then_best():
    assert cv.default_pair([{"test accuracy": 0.9}, {"test accuracy": 0.8}, {"test accuracy": 0.99}]) == (1, 2)
    assert cv.default_pair([{"test accuracy": 0.9}, {"test accuracy": None}]) == (1, 0)
    assert cv.default_pair([{"test accuracy": 0.5}, {"test accuracy": 0.5}]) == (0, 1)
    with pytest.raises(ValueError, match="two runs"):
        cv.default_pair([{"test accuracy": 0.5}])


def test_mismatched_test_sets():
    labels = {"a": np.array([0, 1, 2]), "b": np.array([0, 1, 2]), "c": np.array([0, 1]), "d": np.array([2, 1, 0])}
    assert cv.mismatched_test_sets(labels) == ["c", "d"]
    # the odd one out is dropped even when it comes first; a tie keeps the first run's set
    assert cv.mismatched_test_sets({"d": labels["d"], "a": labels["a"], "b": labels["b"]}) == ["d"]
    assert cv.mismatched_test_sets({"d": labels["d"], "a": labels["a"]}) == ["a"]
    assert cv.mismatched_test_sets({}) == []


def test_comparable_outputs_leave_out_unreadable_misshapen_and_other_test_sets(tmp_path):
    labels = np.array([0, 1, 2, 2], dtype=np.uint8)
    probs = np.eye(3, dtype=np.float16)[[0, 1, 2, 1]]
    stored = {"good": (probs, labels), "also": (probs[::-1], labels), "wide": (np.ones((4, 5)), labels),
              "short": (probs[:3], labels[:3]), "other-set": (probs, labels[::-1]), "empty": (probs[:0], labels[:0])}
    paths = {name: tmp_path / name for name in [*stored, "damaged", "missing"]}
    for name, (p, y) in stored.items():
        paths[name].mkdir()
        atomic.write_npz(paths[name] / "test_outputs.npz", probs=p, labels=y)
    paths["damaged"].mkdir()
    (paths["damaged"] / "test_outputs.npz").write_bytes(b"PK\x03\x04 not a zip at all")
    outputs, messages = cv.comparable_outputs(paths, len(CLASSES))
    assert list(outputs) == ["good", "also"]
    assert outputs["also"][0].dtype == np.float32 and outputs["also"][0].tolist() == probs[::-1].tolist()
    # unreadable or misshapen in the order given, then the runs scored on another (here: a shorter) test set
    assert [m.split(":")[0] for m in messages] == ["wide", "empty", "damaged", "missing", "short", "other-set"]
    assert "shape (4, 5) for 4 labels, not 3 classes" in messages[0]
    assert "cannot be read (BadZipFile" in messages[2] and "cannot be read (FileNotFoundError" in messages[3]
    assert all("stored test labels differ" in m for m in messages[4:])
    assert all(m.endswith("left out.") for m in messages)


def test_checkpoint_size_prefers_best_then_last(tmp_path):
    assert cv.checkpoint_size_bytes(tmp_path) is None
    (tmp_path / "last.pt").write_bytes(b"x" * 10)
    assert cv.checkpoint_size_bytes(tmp_path) == 10
    (tmp_path / "best.pt").write_bytes(b"x" * 7)
    assert cv.checkpoint_size_bytes(tmp_path) == 7


def test_learning_curves_one_row_per_epoch_last_event_wins():
    events = {
        "a": [
            {"type": "start", "epoch": 0},
            {"type": "step", "epoch": 1, "loss": 2.0, "elapsed": 0.5},
            {"type": "epoch", "epoch": 2, "elapsed": 20.0, "val_acc": 0.8, "val_loss": 0.5,
             "train_acc": 0.7, "train_loss": 0.9},
            {"type": "epoch", "epoch": 1, "elapsed": 10.0, "val_acc": 0.5, "val_loss": 1.0,
             "train_acc": 0.4, "train_loss": 1.5},
            {"type": "epoch", "epoch": 2, "elapsed": 21.0, "val_acc": 0.85, "val_loss": 0.4,
             "train_acc": 0.75, "train_loss": 0.8},  # the epoch again after a resume
        ],
        "b": [{"type": "epoch", "epoch": 1, "elapsed": 3.0, "val_acc": None, "val_loss": None,
               "train_acc": 0.6, "train_loss": 1.1}, {"type": "epoch", "epoch": "x"}],
    }
    rows = cv.learning_curves(events)
    assert rows == [
        {"run": "a", "epoch": 1, "training s": 10.0, "val accuracy": 0.5, "val loss": 1.0,
         "train accuracy": 0.4, "train loss": 1.5},
        {"run": "a", "epoch": 2, "training s": 21.0, "val accuracy": 0.85, "val loss": 0.4,
         "train accuracy": 0.75, "train loss": 0.8},
        {"run": "b", "epoch": 1, "training s": 3.0, "val accuracy": None, "val loss": None,
         "train accuracy": 0.6, "train loss": 1.1},
    ]
    assert cv.has_values(rows, "val accuracy") and not cv.has_values(rows[2:], "val accuracy")


def test_per_class_f1_rows():
    rows = cv.per_class_f1({"A": REPORT_A, "B": REPORT_B})
    assert [(r["run"], r["class"]) for r in rows] == [("A", "cat"), ("A", "dog"), ("A", "owl"),
                                                     ("B", "cat"), ("B", "dog"), ("B", "owl")]
    # B on owl: tp 2 (images 5, 6), predicted owl twice, 3 owls: precision 1, recall 2/3, F1 0.8
    assert rows[5]["F1"] == pytest.approx(0.8)


def test_class_gains_biggest_gain_first():
    gains = cv.class_gains(REPORT_A, REPORT_B)
    # right per class: A cat 1, dog 2, owl 1; B cat 3, dog 1, owl 2
    assert [(g["class"], g["A right"], g["B right"], g["change"]) for g in gains] == [
        ("cat", 1, 3, 2), ("owl", 1, 2, 1), ("dog", 2, 1, -1)]
    assert sum(g["change"] for g in gains) == 2


def test_gain_summary_wording():
    text = cv.gain_summary("A", "B", REPORT_A, REPORT_B)
    assert text == ("B gets 2 more of the 8 test images right than A (50.00% → 75.00%, +25.00 points). "
                    "B gains most on cat (+2), owl (+1). It loses most on dog (-1).")
    back = cv.gain_summary("B", "A", REPORT_B, REPORT_A)
    assert back.startswith("A gets 2 fewer of the 8 test images right than B (75.00% → 50.00%, -25.00 points).")
    same = cv.gain_summary("A", "A2", REPORT_A, REPORT_A)
    assert same == "A and A2 get the same number of the 8 test images right (50.00% → 50.00%, +0.00 points)."


def test_improvement_for_b_flips_off_diagonal():
    diff = np.array([[2, -1], [-3, 1]])
    np.testing.assert_array_equal(cv.improvement_for_b(diff), [[2, 1], [3, 1]])


def test_gallery_tiles_order_by_swing_and_limit():
    labels = np.array([0, 1, 2, 0])
    probs_a = np.array([[0.1, 0.9, 0], [0.5, 0.2, 0.3], [0.4, 0.4, 0.2], [0.3, 0.7, 0]])
    probs_b = np.array([[0.6, 0.4, 0], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9], [0.9, 0.1, 0]])
    # swings on the true class: 0.5, 0.6, 0.7, 0.6
    tiles = cv.gallery_tiles([0, 1, 2, 3], labels, probs_a, probs_b)
    assert [t["index"] for t in tiles] == [2, 1, 3, 0]  # ties (1, 3) in index order
    assert tiles[0] == {"index": 2, "true": 2, "pred_a": 0, "pred_b": 2, "conf_a": 0.4, "conf_b": 0.9}
    assert [t["index"] for t in cv.gallery_tiles([0, 3], labels, probs_a, probs_b, limit=1)] == [3]
    assert cv.gallery_tiles(np.array([], dtype=np.int64), labels, probs_a, probs_b) == []
    assert cv.tile_caption(tiles[0], CLASSES) == "true owl · A cat 40% · B owl 90%"


def test_upscale_nearest_neighbour():
    out = cv.upscale(np.array([[0, 255], [7, 9]], dtype=np.uint8), 2)
    np.testing.assert_array_equal(out, [[0, 0, 255, 255], [0, 0, 255, 255], [7, 7, 9, 9], [7, 7, 9, 9]])
    assert out.dtype == np.uint8
    with pytest.raises(ValueError, match="positive integer"):
        cv.upscale(out, 0)
    with pytest.raises(ValueError, match="grey image"):
        cv.upscale(np.zeros((2, 2, 3)), 2)


def test_probability_rows_and_top_predictions():
    probs = {"m1": np.array([0.2, 0.7, 0.1], np.float32), "m2": np.array([[0.5, 0.1, 0.4]])}
    rows = cv.probability_rows(probs, CLASSES)
    assert len(rows) == 6 and rows[1] == {"run": "m1", "class": "dog", "probability": pytest.approx(0.7)}
    top = cv.top_predictions(probs, CLASSES)
    assert [(t["run"], t["prediction"], t["runner-up"]) for t in top] == [("m1", "dog", "cat"), ("m2", "cat", "owl")]
    assert top[1]["confidence"] == pytest.approx(0.5) and top[1]["runner-up probability"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="2 probabilities for 3 classes"):
        cv.probability_rows({"bad": np.array([0.5, 0.5])}, CLASSES)


def test_table_exports_through_core_compare():
    table = [cv.table_row("a", "mlp", {"params": 10}, REPORT_A), cv.table_row("b", "cnn", {"params": 20}, REPORT_B)]
    lines = comparison_csv(table, list(cv.COLUMNS)).splitlines()
    assert lines[0] == ",".join(cv.COLUMNS)
    assert lines[1].startswith("a,mlp,0.5,") and lines[1].endswith(",10,,,,,")
