"""Tests for core.analysis on a hand-made matrix of test outputs."""

import numpy as np
import pytest

from core.analysis.errors import (
    HARD_PAIRS,
    cell_indices,
    label_error_score,
    misclassified,
    misclassified_table,
    suspected_label_errors,
    top_k,
    worst_classes,
)

# 7 images, 3 classes. pred = argmax, conf = max.
PROBS = np.array(
    [
        [0.90, 0.05, 0.05],  # 0: label 0, pred 0, conf 0.90  right
        [0.20, 0.70, 0.10],  # 1: label 0, pred 1, conf 0.70  wrong (0 -> 1)
        [0.10, 0.80, 0.10],  # 2: label 0, pred 1, conf 0.80  wrong (0 -> 1)
        [0.60, 0.30, 0.10],  # 3: label 1, pred 0, conf 0.60  wrong (1 -> 0)
        [0.02, 0.01, 0.97],  # 4: label 1, pred 2, conf 0.97  wrong (1 -> 2)
        [0.05, 0.15, 0.80],  # 5: label 2, pred 2, conf 0.80  right
        [0.55, 0.05, 0.40],  # 6: label 2, pred 0, conf 0.55  wrong (2 -> 0)
    ]
)
LABELS = np.array([0, 0, 0, 1, 1, 2, 2])
PREDS = PROBS.argmax(axis=1)
# Wrong images by confidence descending: 4 (0.97), 2 (0.80), 1 (0.70), 3 (0.60), 6 (0.55).


def test_misclassified_without_filters_sorted_by_confidence():
    np.testing.assert_array_equal(misclassified(PROBS, LABELS), [4, 2, 1, 3, 6])


def test_misclassified_accepts_float16():
    np.testing.assert_array_equal(misclassified(PROBS.astype(np.float16), LABELS), [4, 2, 1, 3, 6])


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"true_class": 0}, [2, 1]),
        ({"pred_class": 0}, [3, 6]),
        ({"min_conf": 0.65}, [4, 2, 1]),
        ({"max_conf": 0.65}, [3, 6]),
        ({"min_conf": 0.6, "max_conf": 0.8}, [2, 1, 3]),  # bounds are inclusive
        ({"pair": (0, 1)}, [2, 1, 3]),  # 0 -> 1 (images 1, 2) and 1 -> 0 (image 3)
        ({"pair": (1, 0)}, [2, 1, 3]),  # order of the pair does not matter
        ({"pair": (0, 1), "true_class": 1}, [3]),
        ({"true_class": 2, "pred_class": 1}, []),
    ],
)
def test_misclassified_filters(filters, expected):
    out = misclassified(PROBS, LABELS, **filters)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "filters, message",
    [
        ({"min_conf": 0.9, "max_conf": 0.5}, "min_conf"),
        ({"pair": (1, 1)}, "two different classes"),
        ({"true_class": 3}, r"true_class must be in \[0, 3\)"),
        ({"pair": (0, 5)}, r"pair\[1\]"),
    ],
)
def test_misclassified_rejects_bad_filters(filters, message):
    with pytest.raises(ValueError, match=message):
        misclassified(PROBS, LABELS, **filters)


def test_outputs_are_validated():
    with pytest.raises(ValueError, match="7 rows but labels has 2"):
        misclassified(PROBS, [0, 1])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        misclassified(PROBS, [0, 0, 0, 1, 1, 2, 3])


def test_cell_indices_sorted_by_confidence_when_probs_given():
    # Cell (true 0, predicted 1) holds images 1 (0.70) and 2 (0.80).
    np.testing.assert_array_equal(cell_indices(LABELS, PREDS, 0, 1, probs=PROBS), [2, 1])
    np.testing.assert_array_equal(cell_indices(LABELS, PREDS, 0, 1), [1, 2])
    # A diagonal cell: images 5 (0.80) and nothing else for class 2.
    np.testing.assert_array_equal(cell_indices(LABELS, PREDS, 2, 2, probs=PROBS), [5])
    assert cell_indices(LABELS, PREDS, 2, 1).size == 0


def test_top_k_for_one_image():
    assert top_k(PROBS, 6) == [(0, 0.55), (2, 0.40), (1, 0.05)]
    assert top_k(PROBS, 6, k=1) == [(0, 0.55)]
    # Ties keep the lower class first, as argmax does.
    assert top_k(np.array([[0.4, 0.4, 0.2]]), 0, k=2) == [(0, 0.4), (1, 0.4)]
    with pytest.raises(ValueError, match="index"):
        top_k(PROBS, 7)
    with pytest.raises(ValueError, match="k must be"):
        top_k(PROBS, 0, k=4)


def test_label_error_score_is_margin_over_true_label():
    # p(pred) - p(true): 0 | .70-.20 | .80-.10 | .60-.30 | .97-.01 | 0 | .55-.40
    np.testing.assert_allclose(
        label_error_score(PROBS, LABELS), [0, 0.50, 0.70, 0.30, 0.96, 0, 0.15], atol=1e-12
    )


# Three confident mistakes whose order by score differs from their order by confidence.
SUSPECT_PROBS = np.array(
    [
        [0.90, 0.10, 0.00],  # label 1: conf 0.90, score 0.90 - 0.10 = 0.80
        [0.85, 0.00, 0.15],  # label 1: conf 0.85, score 0.85 - 0.00 = 0.85
        [0.96, 0.04, 0.00],  # label 1: conf 0.96, score 0.96 - 0.04 = 0.92
        [0.99, 0.01, 0.00],  # label 0: right, never a suspect
    ]
)
SUSPECT_LABELS = np.array([1, 1, 1, 0])


def test_suspected_label_errors_ranked_by_score():
    # By score: 2 (0.92), 1 (0.85), 0 (0.80); by confidence alone it would be 2, 0, 1.
    out = suspected_label_errors(SUSPECT_PROBS, SUSPECT_LABELS, min_confidence=0.0)
    np.testing.assert_array_equal(out, [2, 1, 0])


def test_suspected_label_errors_confidence_floor_and_limit():
    # Confidence >= 0.88 keeps images 2 (0.96) and 0 (0.90).
    out = suspected_label_errors(SUSPECT_PROBS, SUSPECT_LABELS, min_confidence=0.88)
    np.testing.assert_array_equal(out, [2, 0])
    out = suspected_label_errors(SUSPECT_PROBS, SUSPECT_LABELS, min_confidence=0.0, limit=1)
    np.testing.assert_array_equal(out, [2])
    # Default floor 0.95 on the main matrix: only image 4 (0.97).
    np.testing.assert_array_equal(suspected_label_errors(PROBS, LABELS), [4])


def test_worst_classes_lowest_f1_first():
    assert worst_classes([0.9, 0.5, 0.7, 0.5]) == [1, 3, 2]  # tie 0.5: lower class first
    assert worst_classes(np.array([0.9, 0.5, 0.7]), n=1) == [1]
    assert worst_classes([0.9, 0.5], n=5) == [1, 0]


def test_misclassified_table_rows():
    rows = misclassified_table(PROBS, LABELS, ["a", "b", "c"], [4, 6])
    assert rows == [
        {"index": 4, "true": "b", "predicted": "c", "confidence": 0.97,
         "top3": "c 0.970, a 0.020, b 0.010"},
        {"index": 6, "true": "c", "predicted": "a", "confidence": 0.55,
         "top3": "a 0.550, c 0.400, b 0.050"},
    ]
    assert misclassified_table(PROBS, LABELS, ["a", "b", "c"], []) == []
    with pytest.raises(ValueError, match="2 names for 3 classes"):
        misclassified_table(PROBS, LABELS, ["a", "b"], [4])


FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


def test_hard_pairs_titles_name_their_classes():
    assert set(HARD_PAIRS) == {"fashion-mnist", "mnist"}
    assert [(a, b) for _, a, b in HARD_PAIRS["fashion-mnist"]] == [(6, 0), (2, 4)]
    for title, a, b in HARD_PAIRS["fashion-mnist"]:
        assert title == f"{FASHION_CLASSES[a]} vs {FASHION_CLASSES[b]}"
    assert [(a, b) for _, a, b in HARD_PAIRS["mnist"]] == [(4, 9), (3, 5), (7, 1)]
    for title, a, b in HARD_PAIRS["mnist"]:
        assert title == f"{a} vs {b}"
