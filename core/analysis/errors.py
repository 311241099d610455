"""Where a model goes wrong: error slices of stored test outputs (pure numpy, no torch).

Inputs are the stored test outputs of a run: ``probs`` (N, C) class probabilities (float16 is
upcast to float64) and ``labels`` (N,) true classes. The prediction for an image is
``argmax(probs)`` (lowest class on ties) and its confidence is that maximum probability.
Every list of indices is sorted by confidence descending, ties by ascending index.
"""

from __future__ import annotations

import numpy as np

from core.analysis.metrics import as_labels, as_probs, check_label_range

# Class pairs a model typically confuses, per dataset: (title, class a, class b). A pair covers
# both directions (true a predicted b, and true b predicted a).
HARD_PAIRS: dict[str, list[tuple[str, int, int]]] = {
    "fashion-mnist": [
        ("Shirt vs T-shirt/top", 6, 0),
        ("Pullover vs Coat", 2, 4),
    ],
    "mnist": [
        ("4 vs 9", 4, 9),
        ("3 vs 5", 3, 5),
        ("7 vs 1", 7, 1),
    ],
}


def _outputs(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """Validate test outputs and return them as (float64 probs, int64 labels)."""
    pr = as_probs(probs)
    y = as_labels(labels, "labels")
    if pr.shape[0] != y.shape[0]:
        raise ValueError(f"probs has {pr.shape[0]} rows but labels has {y.shape[0]} entries")
    check_label_range(y, pr.shape[1], "labels")
    return pr, y


def _check_class(c: int, num_classes: int, name: str) -> None:
    """Raise ValueError unless ``c`` is a class index in ``[0, num_classes)``."""
    if not 0 <= c < num_classes:
        raise ValueError(f"{name} must be in [0, {num_classes}), got {c}")


def _sorted_desc(indices: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Sort ``indices`` by ``key[indices]`` descending, ties by ascending index."""
    order = np.argsort(-key[indices], kind="stable")
    return indices[order].astype(np.int64)


def cell_indices(labels, preds, true_class: int, pred_class: int, probs=None) -> np.ndarray:
    """Indices with this (true, predicted) pair; by ``probs[i, pred_class]`` descending if given."""
    y = as_labels(labels, "labels")
    p = as_labels(preds, "preds")
    if y.shape != p.shape:
        raise ValueError(f"labels and preds differ in length: {y.shape[0]} vs {p.shape[0]}")
    idx = np.flatnonzero((y == true_class) & (p == pred_class))
    if probs is None:
        return idx.astype(np.int64)
    pr = as_probs(probs)
    if pr.shape[0] != y.shape[0]:
        raise ValueError(f"probs has {pr.shape[0]} rows but labels has {y.shape[0]} entries")
    _check_class(pred_class, pr.shape[1], "pred_class")
    return _sorted_desc(idx, pr[:, pred_class])


def misclassified(
    probs,
    labels,
    true_class: int | None = None,
    pred_class: int | None = None,
    min_conf: float = 0.0,
    max_conf: float = 1.0,
    pair: tuple[int, int] | None = None,
) -> np.ndarray:
    """Indices of wrong predictions matching every given filter (confidence bounds inclusive)."""
    pr, y = _outputs(probs, labels)
    num_classes = pr.shape[1]
    if min_conf > max_conf:
        raise ValueError(f"min_conf ({min_conf}) must not exceed max_conf ({max_conf})")
    pred = pr.argmax(axis=1)
    conf = pr.max(axis=1)
    keep = (pred != y) & (conf >= min_conf) & (conf <= max_conf)
    if true_class is not None:
        _check_class(true_class, num_classes, "true_class")
        keep &= y == true_class
    if pred_class is not None:
        _check_class(pred_class, num_classes, "pred_class")
        keep &= pred == pred_class
    if pair is not None:
        a, b = pair
        _check_class(a, num_classes, "pair[0]")
        _check_class(b, num_classes, "pair[1]")
        if a == b:
            raise ValueError(f"pair must name two different classes, got ({a}, {b})")
        keep &= ((y == a) & (pred == b)) | ((y == b) & (pred == a))
    return _sorted_desc(np.flatnonzero(keep), conf)


def top_k(probs, index: int, k: int = 3) -> list[tuple[int, float]]:
    """The ``k`` most probable (class, probability) pairs of image ``index``, highest first."""
    pr = as_probs(probs)
    if not 0 <= index < pr.shape[0]:
        raise ValueError(f"index must be in [0, {pr.shape[0]}), got {index}")
    if not 1 <= k <= pr.shape[1]:
        raise ValueError(f"k must be in [1, {pr.shape[1]}], got {k}")
    row = pr[index]
    order = np.argsort(-row, kind="stable")[:k]
    return [(int(c), float(row[c])) for c in order]


def label_error_score(probs, labels) -> np.ndarray:
    """Per image ``p(predicted) - p(true label)``: 0 when right, near 1 when sure and wrong."""
    pr, y = _outputs(probs, labels)
    rows = np.arange(pr.shape[0])
    return pr.max(axis=1) - pr[rows, y]


def suspected_label_errors(
    probs, labels, min_confidence: float = 0.95, limit: int = 50
) -> np.ndarray:
    """Wrong predictions with confidence >= min_confidence, top ``limit`` by label_error_score."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    pr, y = _outputs(probs, labels)
    score = label_error_score(pr, y)
    candidates = np.flatnonzero((pr.argmax(axis=1) != y) & (pr.max(axis=1) >= min_confidence))
    return _sorted_desc(candidates, score)[:limit]


def worst_classes(per_class_f1, n: int = 3) -> list[int]:
    """The ``n`` class indices with the lowest F1, lowest first (ties: lower index first)."""
    f1 = np.asarray(per_class_f1, dtype=np.float64)
    if f1.ndim != 1:
        raise ValueError(f"per_class_f1 must be 1-D, got shape {f1.shape}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [int(c) for c in np.argsort(f1, kind="stable")[:n]]


def misclassified_table(probs, labels, class_names, indices) -> list[dict]:
    """CSV-ready rows: index, true, predicted, confidence and the top-3 classes as text."""
    pr, y = _outputs(probs, labels)
    if len(class_names) != pr.shape[1]:
        raise ValueError(f"class_names has {len(class_names)} names for {pr.shape[1]} classes")
    rows = []
    for i in as_labels(indices, "indices"):
        top = top_k(pr, int(i), k=min(3, pr.shape[1]))
        rows.append(
            {
                "index": int(i),
                "true": str(class_names[y[i]]),
                "predicted": str(class_names[top[0][0]]),
                "confidence": round(top[0][1], 4),
                "top3": ", ".join(f"{class_names[c]} {p:.3f}" for c, p in top),
            }
        )
    return rows
