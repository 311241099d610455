"""Tests for core.metrics against values worked out by hand on small arrays."""

import json

import numpy as np
import pytest

from core.analysis.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    per_class_metrics,
    row_normalise,
    top_k_accuracy,
)

# A 3-class example. Supports: class 0 has 4 images, classes 1 and 2 have 3 each.
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 1])
# Rows = true, columns = predicted:
#   true 0 -> predicted 0, 0, 1, 2      -> [2, 1, 1]
#   true 1 -> predicted 1, 1, 0         -> [1, 2, 0]
#   true 2 -> predicted 2, 2, 1         -> [0, 1, 2]
CONFUSION = np.array([[2, 1, 1], [1, 2, 0], [0, 1, 2]])
# Column sums (times predicted) 3, 4, 3; row sums (support) 4, 3, 3; diagonal 2, 2, 2.
PRECISION = [2 / 3, 2 / 4, 2 / 3]
RECALL = [2 / 4, 2 / 3, 2 / 3]
# F1 = 2PR / (P + R): class 0 = 2 * (1/3) / (7/6) = 4/7, class 1 the same, class 2 = 2/3.
F1 = [4 / 7, 4 / 7, 2 / 3]


def test_accuracy_counts_matches():
    # 6 of the 10 predictions are right (positions 0, 1, 4, 5, 7, 8).
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.6)
    assert accuracy([1, 2], [1, 2]) == 1.0


def test_confusion_matrix_rows_are_true_classes():
    conf = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert conf.dtype == np.int64
    np.testing.assert_array_equal(conf, CONFUSION)
    # One image of class 0 predicted as 1 lands in row 0, column 1 (not the transpose).
    np.testing.assert_array_equal(confusion_matrix([0], [1], 2), [[0, 1], [0, 0]])


def test_confusion_matrix_keeps_classes_never_seen():
    conf = confusion_matrix([0, 1], [0, 1], 4)
    assert conf.shape == (4, 4)
    assert conf.sum() == 2


def test_per_class_metrics_three_class_example():
    m = per_class_metrics(CONFUSION)
    np.testing.assert_allclose(m["precision"], PRECISION)
    np.testing.assert_allclose(m["recall"], RECALL)
    np.testing.assert_allclose(m["f1"], F1)
    np.testing.assert_array_equal(m["support"], [4, 3, 3])


@pytest.mark.filterwarnings("error")
def test_per_class_metrics_zero_division_gives_zero():
    # y_true [0, 0, 1], y_pred [0, 1, 1]: class 2 is neither present nor predicted.
    # class 0: P = 1/1, R = 1/2, F1 = 2/3; class 1: P = 1/2, R = 1/1, F1 = 2/3; class 2: 0/0 -> 0.
    m = per_class_metrics(confusion_matrix([0, 0, 1], [0, 1, 1], 3))
    np.testing.assert_allclose(m["precision"], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(m["recall"], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(m["f1"], [2 / 3, 2 / 3, 0.0])
    np.testing.assert_array_equal(m["support"], [2, 1, 0])
    # Both wrong: P = R = 0 for both classes, so F1 is 0 / 0 -> 0 (not NaN).
    m = per_class_metrics(confusion_matrix([0, 1], [1, 0], 2))
    np.testing.assert_array_equal(m["f1"], [0.0, 0.0])


def test_classification_report_macro_and_weighted():
    report = classification_report(Y_TRUE, Y_PRED, 3, class_names=["zero", "one", "two"])
    assert report["accuracy"] == pytest.approx(0.6)
    # Macro: plain mean over classes.
    #   precision (2/3 + 1/2 + 2/3) / 3 = 11/18, recall (1/2 + 2/3 + 2/3) / 3 = 11/18,
    #   f1 (4/7 + 4/7 + 2/3) / 3 = (24/21 + 14/21) / 3 = 38/63.
    macro = {"precision": 11 / 18, "recall": 11 / 18, "f1": 38 / 63}
    assert report["macro"] == pytest.approx(macro)
    # Weighted by support 4, 3, 3 (of 10):
    #   precision (4 * 2/3 + 3 * 1/2 + 3 * 2/3) / 10 = (16/6 + 9/6 + 12/6) / 10 = 37/60,
    #   recall (4 * 1/2 + 3 * 2/3 + 3 * 2/3) / 10 = 6/10 (weighted recall is the accuracy),
    #   f1 (4 * 4/7 + 3 * 4/7 + 3 * 2/3) / 10 = (4 + 2) / 10 = 6/10.
    assert report["weighted"] == pytest.approx({"precision": 37 / 60, "recall": 0.6, "f1": 0.6})
    assert [row["name"] for row in report["per_class"]] == ["zero", "one", "two"]
    assert report["per_class"][1] == pytest.approx(
        {"name": "one", "precision": 0.5, "recall": 2 / 3, "f1": 4 / 7, "support": 3}
    )
    assert report["confusion"] == CONFUSION.tolist()


def test_classification_report_is_json_serialisable_with_default_names():
    report = classification_report(Y_TRUE, Y_PRED, 3)
    assert json.loads(json.dumps(report)) == report
    assert [row["name"] for row in report["per_class"]] == ["0", "1", "2"]
    assert isinstance(report["per_class"][0]["support"], int)


def test_classification_report_macro_counts_absent_classes_as_zero():
    # Same zero-division example: macro precision = (1 + 1/2 + 0) / 3 = 1/2.
    report = classification_report([0, 0, 1], [0, 1, 1], 3)
    assert report["macro"]["precision"] == pytest.approx(0.5)
    # Weighted ignores the absent class: (2 * 1 + 1 * 1/2) / 3 = 5/6.
    assert report["weighted"]["precision"] == pytest.approx(5 / 6)


PROBS = np.array(
    [
        [0.5, 0.3, 0.2],  # label 0: rank 1
        [0.1, 0.6, 0.3],  # label 2: rank 2
        [0.2, 0.3, 0.5],  # label 0: rank 3
        [0.4, 0.4, 0.2],  # label 1: tied with class 0, which ranks first (as argmax): rank 2
    ]
)
PROBS_LABELS = np.array([0, 2, 0, 1])


@pytest.mark.parametrize("k, expected", [(1, 1 / 4), (2, 3 / 4), (3, 1.0)])
def test_top_k_accuracy_ranks(k, expected):
    assert top_k_accuracy(PROBS_LABELS, PROBS, k) == pytest.approx(expected)


def test_top_1_accuracy_equals_accuracy_of_argmax_and_accepts_float16():
    assert top_k_accuracy(PROBS_LABELS, PROBS, 1) == accuracy(PROBS_LABELS, PROBS.argmax(axis=1))
    assert top_k_accuracy(PROBS_LABELS, PROBS.astype(np.float16), 2) == pytest.approx(3 / 4)


def test_row_normalise_percent_per_true_class():
    # Rows [2, 1, 1] / 4, [1, 2, 0] / 3; the empty third row stays zero.
    out = row_normalise([[2, 1, 1], [1, 2, 0], [0, 0, 0]])
    np.testing.assert_allclose(out, [[50, 25, 25], [100 / 3, 200 / 3, 0], [0, 0, 0]])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: accuracy([0, 1, 2], [0, 1]), "differ in length"),
        (lambda: accuracy([], []), "empty"),
        (lambda: accuracy([[0, 1]], [[0, 1]]), "1-D"),
        (lambda: accuracy([0.5, 1.0], [0, 1]), "integer"),
        (lambda: confusion_matrix([0, 1], [0, 3], 3), r"y_pred must lie in \[0, 3\)"),
        (lambda: confusion_matrix([-1, 1], [0, 1], 3), r"y_true must lie in \[0, 3\)"),
        (lambda: top_k_accuracy([0], [[0.5, 0.5]], 3), r"k must be in \[1, 2\]"),
        (lambda: top_k_accuracy([0, 1], [[0.5, 0.5]], 1), "rows"),
        (lambda: top_k_accuracy([0], [0.5, 0.5], 1), r"shape \(N, C\)"),
        (lambda: classification_report([0], [0], 2, ["a"]), "1 names for 2 classes"),
        (lambda: per_class_metrics([[1, 2, 3]]), "square"),
        (lambda: row_normalise([[1, -1], [0, 1]]), "negative"),
    ],
)
def test_invalid_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
