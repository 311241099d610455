"""Classification metrics from label arrays and confusion matrices (pure numpy, no torch).

Conventions: labels are integers in ``[0, num_classes)``; a confusion matrix has rows = true
class and columns = predicted class. Wherever a ratio has a zero denominator (a class never
predicted, never present, or with precision = recall = 0) the metric is defined as 0.0, the
same choice as scikit-learn's ``zero_division=0``.
"""

from __future__ import annotations

import numpy as np

METRIC_KEYS = ("precision", "recall", "f1")


def as_labels(y, name: str = "labels") -> np.ndarray:
    """Return ``y`` as a 1-D int64 array, or raise ValueError naming ``name``."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    whole_floats = np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))
    if arr.size and not (np.issubdtype(arr.dtype, np.integer) or whole_floats):
        raise ValueError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def check_label_range(y: np.ndarray, num_classes: int, name: str = "labels") -> None:
    """Raise ValueError unless every label of ``y`` lies in ``[0, num_classes)``."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}), got values in [{y.min()}, {y.max()}]"
        )


def as_probs(probs, name: str = "probs") -> np.ndarray:
    """Return ``probs`` as a 2-D float64 (N, C) array (float16 is upcast), or raise ValueError."""
    arr = np.asarray(probs)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, C) with C >= 1, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _label_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Validate two non-empty label arrays of the same length and return them as int64."""
    t = as_labels(y_true, "y_true")
    p = as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    if t.size == 0:
        raise ValueError("y_true and y_pred are empty")
    return t, p


def _as_confusion(confusion) -> np.ndarray:
    """Validate a square, non-negative confusion matrix and return it as int64."""
    c = np.asarray(confusion)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 1:
        raise ValueError(f"confusion must be a square (C, C) matrix, got shape {c.shape}")
    if np.any(c < 0):
        raise ValueError("confusion must not contain negative counts")
    return c.astype(np.int64, copy=False)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Elementwise ``num / den`` as float64 with 0.0 wherever ``den`` is 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def accuracy(y_true, y_pred) -> float:
    """Fraction of positions where ``y_pred`` equals ``y_true``."""
    t, p = _label_pair(y_true, y_pred)
    return float(np.mean(t == p))


def top_k_accuracy(y_true, probs, k: int) -> float:
    """Fraction of rows whose true label is among the ``k`` top scores (ties: lower class first)."""
    t = as_labels(y_true, "y_true")
    pr = as_probs(probs)
    if pr.shape[0] != t.shape[0]:
        raise ValueError(f"probs has {pr.shape[0]} rows but y_true has {t.shape[0]} labels")
    if t.size == 0:
        raise ValueError("y_true is empty")
    num_classes = pr.shape[1]
    check_label_range(t, num_classes, "y_true")
    if not 1 <= k <= num_classes:
        raise ValueError(f"k must be in [1, {num_classes}], got {k}")
    top = np.argsort(-pr, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == t[:, None], axis=1)))


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Int64 (C, C) count matrix, rows = true class, columns = predicted class."""
    t, p = _label_pair(y_true, y_pred)
    check_label_range(t, num_classes, "y_true")
    check_label_range(p, num_classes, "y_pred")
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def per_class_metrics(confusion) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 (float64, 0.0 on zero division) and support (int64)."""
    c = _as_confusion(confusion)
    tp = np.diag(c)
    support = c.sum(axis=1)
    precision = _safe_divide(tp, c.sum(axis=0))
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def classification_report(y_true, y_pred, num_classes: int, class_names=None) -> dict:
    """JSON-ready report: accuracy, per_class rows, macro and weighted averages, confusion."""
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
    conf = confusion_matrix(y_true, y_pred, num_classes)
    m = per_class_metrics(conf)
    support = m["support"]
    weights = support / support.sum()
    per_class = [
        {
            "name": str(class_names[i]),
            **{key: float(m[key][i]) for key in METRIC_KEYS},
            "support": int(support[i]),
        }
        for i in range(num_classes)
    ]
    return {
        "accuracy": float(np.trace(conf) / conf.sum()),
        "per_class": per_class,
        "macro": {key: float(np.mean(m[key])) for key in METRIC_KEYS},
        "weighted": {key: float(np.sum(m[key] * weights)) for key in METRIC_KEYS},
        "confusion": conf.tolist(),
    }


def row_normalise(confusion) -> np.ndarray:
    """Confusion matrix as percent of each true class (rows sum to 100; all-zero rows stay 0)."""
    c = _as_confusion(confusion)
    return 100.0 * _safe_divide(c, c.sum(axis=1, keepdims=True))
