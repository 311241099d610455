import csv
import io

import numpy as np
import pytest

from core.analysis import errors as analysis
from core.analysis import metrics
from core.views import evaluation as ev

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def epoch(n, **fields):
    return {"type": "epoch", "epoch": n, **fields}


# ---- metrics.jsonl ------------------------------------------------------------------------------------

def test_learning_curves_one_row_per_epoch_last_event_wins_and_missing_values_are_none():
    events = [
        {"type": "start", "epoch": 0},
        {"type": "step", "epoch": 1, "loss": 2.0},
        epoch(2, train_loss=0.5, val_loss=0.6, train_acc=0.8, val_acc=0.7),
        epoch(1, train_loss=1.0, val_loss=1.1, train_acc=0.5, val_acc=0.4),
        epoch(2, train_loss=0.4, val_loss=None, train_acc=0.9, val_acc=float("nan")),  # resumed: repeated epoch
        epoch(0, train_loss=9.0),  # not a real epoch
        {"type": "epoch", "epoch": "3", "train_loss": 1.0},  # junk
        {"type": "test", "epoch": 2, "test_acc": 0.9},
    ]
    rows = ev.learning_curves(events)
    assert rows == [
        {"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "train_acc": 0.5, "val_acc": 0.4},
        {"epoch": 2, "train_loss": 0.4, "val_loss": None, "train_acc": 0.9, "val_acc": None},
    ]
    assert ev.curve_series(rows, "loss") == {"train": ([1, 2], [1.0, 0.4]), "validation": ([1], [1.1])}
    assert ev.curve_series(rows, "acc")["validation"] == ([1], [0.4])
    assert ev.learning_curves([]) == []
    with pytest.raises(ValueError):
        ev.curve_series(rows, "f1")


def test_epoch_confusions_keep_well_formed_matrices_by_epoch():
    good = [[3, 1], [0, 4]]
    events = [epoch(1, val_confusion=good), epoch(2, val_confusion=None), epoch(3, val_confusion=[[1, 2, 3]]),
              epoch(4, val_confusion=[[1, -1], [0, 0]]), epoch(5, val_confusion="junk"),
              epoch(6, val_confusion=[[0, 0], [2, 2]])]
    out = ev.epoch_confusions(events, 2)
    assert list(out) == [1, 6]
    assert out[1].dtype == np.int64 and out[1].tolist() == good


# ---- headline and tables ------------------------------------------------------------------------------

def outputs():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0]],
                     dtype=np.float16)
    labels = np.array([0, 1, 1, 2, 1], dtype=np.uint8)
    return probs, labels


def test_outputs_confusion_and_headline():
    probs, labels = outputs()
    preds, conf = ev.outputs_confusion(probs, labels)
    assert preds.tolist() == [0, 1, 0, 2, 0]  # a tie goes to the lower class
    assert conf.tolist() == metrics.confusion_matrix(labels, preds, 3).tolist()
    head = ev.headline(probs, labels, {"params": 1234, "train_seconds": 75.5, "epochs": 3, "best_epoch": 2})
    report = metrics.classification_report(labels, preds, 3)
    assert head["test_acc"] == pytest.approx(0.6) and head["macro_f1"] == pytest.approx(report["macro"]["f1"])
    assert (head["params"], head["train_seconds"], head["epochs"], head["best_epoch"]) == (1234, 75.5, 3, 2)
    assert head["test_images"] == 5
    empty = ev.headline(probs, labels, None)
    assert empty["params"] is None and empty["train_seconds"] is None


def test_per_class_rows_flag_the_lowest_f1_as_worst():
    conf = np.array([[9, 1, 0, 0], [5, 5, 0, 0], [0, 0, 10, 0], [0, 0, 2, 8]])
    rows = ev.per_class_rows(conf, ["a", "b", "c", "d"], n_worst=2)
    m = metrics.per_class_metrics(conf)
    assert [r["f1"] for r in rows] == [round(float(v), 4) for v in m["f1"]]
    assert [r["support"] for r in rows] == [10, 10, 10, 10]
    assert [r["errors"] for r in rows] == [1, 5, 0, 2]
    assert {r["class"] for r in rows if r["worst"]} == {"b", "a"}
    assert rows[0]["precision"] == round(9 / 14, 4) and rows[1]["recall"] == 0.5
    assert not any(r["worst"] for r in ev.per_class_rows(np.eye(4, dtype=int) * 5, ["a", "b", "c", "d"]))
    with pytest.raises(ValueError):
        ev.per_class_rows(conf, ["a"])


def test_confusion_cells_most_frequent_mistakes_first():
    conf = np.array([[5, 2, 0], [3, 5, 2], [0, 0, 1]])
    cells = ev.confusion_cells(conf, ["x", "y", "z"])
    assert [(c["true"], c["pred"], c["count"]) for c in cells] == [(1, 0, 3), (0, 1, 2), (1, 2, 2)]
    assert cells[0]["label"] == "true y → predicted x (3)"
    assert ev.confusion_cells(np.eye(3, dtype=int), ["x", "y", "z"]) == []


def test_heatmap_cells_counts_percent_and_errors_only():
    conf = np.array([[8, 2], [0, 0]])
    values, text = ev.heatmap_cells(conf, normalise=False)
    assert values.tolist() == [[8, 2], [0, 0]] and text == [["8", "2"], ["", ""]]
    values, text = ev.heatmap_cells(conf, normalise=True)
    assert values.tolist() == [[80.0, 20.0], [0.0, 0.0]] and text == [["80.0", "20.0"], ["", ""]]
    values, text = ev.heatmap_cells(conf, normalise=False, errors_only=True)
    assert np.isnan(values[0, 0]) and np.isnan(values[1, 1]) and values[0, 1] == 2 and text[0][0] == "8"
    assert ev.colour_max([conf, np.array([[1, 5], [1, 1]])], normalise=False, errors_only=True) == 5
    assert ev.colour_max([conf], normalise=True, errors_only=False) == 80.0
    assert ev.colour_max([], normalise=False, errors_only=False) is None


def test_cell_from_selection_reads_customdata_or_axis_labels():
    names = ["a", "b", "c"]
    assert ev.cell_from_selection(None, names) is None
    assert ev.cell_from_selection({"selection": {"points": []}}, names) is None
    clicked = {"selection": {"points": [{"x": "b", "y": "c", "customdata": [2, 1, 7, 50.0]}]}}
    assert ev.cell_from_selection(clicked, names) == (2, 1)
    heatmap = {"selection": {"points": [{"x": "a", "y": "b", "z": 3}]}}
    assert ev.cell_from_selection(heatmap, names) == (1, 0)
    junk = {"selection": {"points": [{"x": "zz", "y": "a", "customdata": [9, 9]}, {"customdata": "no"}]}}
    assert ev.cell_from_selection(junk, names) is None


def test_hard_pairs_of_each_dataset():
    pairs = ev.hard_pairs("fashion-mnist", FASHION)
    assert [(p["title"], FASHION[p["a"]], FASHION[p["b"]]) for p in pairs] == [
        ("Shirt vs T-shirt/top", "Shirt", "T-shirt/top"), ("Pullover vs Coat", "Pullover", "Coat")]
    assert [p["title"] for p in ev.hard_pairs("mnist", [str(d) for d in range(10)])] == ["4 vs 9", "3 vs 5", "7 vs 1"]
    assert ev.hard_pairs("unknown", FASHION) == []


# ---- galleries ----------------------------------------------------------------------------------------

def test_gallery_items_agree_with_core_analysis():
    probs, labels = outputs()
    wrong = analysis.misclassified(probs, labels)
    items = ev.gallery_items(probs, labels, wrong, ["a", "b", "c"])
    assert [i["index"] for i in items] == wrong.tolist()
    for item in items:
        top = analysis.top_k(probs, item["index"], 3)
        assert item["pred"] == top[0][0] and item["confidence"] == pytest.approx(top[0][1])
        assert [p for _, p in item["top"]] == pytest.approx([p for _, p in top])
        assert item["true"] == labels[item["index"]] and item["true_name"] == "abc"[item["true"]]
    assert ev.gallery_items(probs, labels, [], ["a", "b", "c"]) == []
    assert len(ev.gallery_items(probs, labels, [0], ["a", "b", "c"], k=2)[0]["top"]) == 2
    with pytest.raises(ValueError):
        ev.gallery_items(probs, labels, [5], ["a", "b", "c"])


def test_tile_caption_names_true_predicted_and_top_probabilities():
    item = {"index": 12, "true_name": "Shirt", "pred_name": "T-shirt/top",
            "top": [("T-shirt/top", 0.97), ("Shirt", 0.02), ("Coat", 0.01)]}
    caption = ev.tile_caption(item)
    assert caption.startswith("#12 · true **Shirt** → **T-shirt/top**")
    assert "T-shirt/top 97.0% · Shirt 2.0% · Coat 1.0%" in caption


def test_images_match_and_confidence_bounds():
    assert ev.images_match(np.array([1, 2, 3], dtype=np.int64), np.array([1, 2, 3], dtype=np.uint8))
    assert not ev.images_match(np.array([1, 2, 3]), np.array([1, 3, 2]))
    assert not ev.images_match(np.array([1, 2]), np.array([1, 2, 3]))
    assert ev.confidence_bounds(0.9, 0.2) == (0.2, 0.9)
    assert ev.confidence_bounds(-1, 3) == (0.0, 1.0)


def test_csv_of_tables():
    probs, labels = outputs()
    rows = analysis.misclassified_table(probs, labels, ["a", "b", "c"], analysis.misclassified(probs, labels))
    text = ev.to_csv(rows, ev.MISCLASSIFIED_COLUMNS)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["index"]) for r in parsed] == [r["index"] for r in rows]
    assert parsed[0]["top3"] == rows[0]["top3"] and tuple(parsed[0]) == ev.MISCLASSIFIED_COLUMNS
    assert ev.to_csv([], ev.MISCLASSIFIED_COLUMNS) == "index,true,predicted,confidence,top3\n"
    assert ev.to_csv([{"class": "a, b", "f1": None}]) == 'class,f1\n"a, b",\n'
