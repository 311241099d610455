"""What the Evaluate page shows, as pure functions of a run's stored files (numpy only, no torch).

Inputs: the events of metrics.jsonl (core.store.events.read_events), summary.json, and the stored test
outputs (probs (N, C), labels (N,)). Everything here is cheap enough to run on every page load.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.analysis import compare, metrics
from core.analysis import errors as analysis
from core.store.events import epoch_events, number

CURVE_KEYS = ("train_loss", "val_loss", "train_acc", "val_acc")
MISCLASSIFIED_COLUMNS = ("index", "true", "predicted", "confidence", "top3")  # core.analysis.errors.misclassified_table


def learning_curves(events: Sequence[dict]) -> list[dict]:
    """One row per epoch: epoch, train/val loss and accuracy (None where not logged), sorted by epoch."""
    return [{"epoch": epoch, **{k: number(e.get(k)) for k in CURVE_KEYS}}
            for epoch, e in epoch_events(events).items()]


def curve_series(rows: Sequence[dict], kind: str) -> dict[str, tuple[list[int], list[float]]]:
    """For kind 'loss' or 'acc': {'train': (epochs, values), 'validation': ...}, skipping missing values."""
    if kind not in ("loss", "acc"):
        raise ValueError(f"kind must be 'loss' or 'acc', got {kind!r}")
    series = {}
    for split, prefix in (("train", "train"), ("validation", "val")):
        points = [(r["epoch"], r[f"{prefix}_{kind}"]) for r in rows if r.get(f"{prefix}_{kind}") is not None]
        if points:
            series[split] = ([p[0] for p in points], [p[1] for p in points])
    return series


def epoch_confusions(events: Sequence[dict], num_classes: int) -> dict[int, np.ndarray]:
    """The validation confusion matrix logged at each epoch (int64 C x C), by epoch; malformed ones skipped."""
    out = {}
    for epoch, event in epoch_events(events).items():
        raw = event.get("val_confusion")
        if raw is None:
            continue
        try:
            c = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if c.shape != (num_classes, num_classes) or not np.all(np.isfinite(c)) or np.any(c < 0):
            continue
        out[epoch] = c.astype(np.int64)
    return out


def outputs_confusion(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, confusion matrix) of stored test outputs; prediction = argmax, lowest class on ties."""
    pr = metrics.as_probs(probs)
    preds = pr.argmax(axis=1)
    return preds, metrics.confusion_matrix(labels, preds, pr.shape[1])


def headline(probs, labels, summary: dict | None) -> dict:
    """Test accuracy and macro F1 from the outputs themselves; parameters, training seconds, epochs from the summary."""
    preds, conf = outputs_confusion(probs, labels)
    summary = summary or {}
    params = summary.get("params")
    epochs = summary.get("epochs")
    return {
        "test_acc": float(np.trace(conf) / conf.sum()),
        "macro_f1": float(np.mean(metrics.per_class_metrics(conf)["f1"])),
        "params": int(params) if number(params) is not None else None,
        "train_seconds": number(summary.get("train_seconds")),
        "epochs": int(epochs) if number(epochs) is not None else None,
        "best_epoch": summary.get("best_epoch") if number(summary.get("best_epoch")) is not None else None,
        "test_images": int(conf.sum()),
    }


def per_class_rows(confusion, class_names: Sequence[str], n_worst: int = 3) -> list[dict]:
    """Rows of class, precision, recall, F1, support, errors and 'worst' (the n_worst lowest F1, none if all tie)."""
    c = np.asarray(confusion)
    m = metrics.per_class_metrics(c)
    if len(class_names) != c.shape[0]:
        raise ValueError(f"class_names has {len(class_names)} names for {c.shape[0]} classes")
    worst = {i for i in analysis.worst_classes(m["f1"], min(n_worst, c.shape[0])) if m["f1"][i] < m["f1"].max()}
    return [{"class": str(name), "precision": round(float(m["precision"][i]), 4),
             "recall": round(float(m["recall"][i]), 4), "f1": round(float(m["f1"][i]), 4),
             "support": int(m["support"][i]), "errors": int(m["support"][i] - c[i, i]), "worst": i in worst}
            for i, name in enumerate(class_names)]


def confusion_cells(confusion, class_names: Sequence[str]) -> list[dict]:
    """The non-empty off-diagonal cells, most frequent first: true, pred (indices), count and a label."""
    c = np.asarray(confusion)
    cells = [(int(c[t, p]), t, p) for t in range(c.shape[0]) for p in range(c.shape[1]) if t != p and c[t, p] > 0]
    cells.sort(key=lambda x: (-x[0], x[1], x[2]))
    return [{"true": t, "pred": p, "count": n,
             "label": f"true {class_names[t]} → predicted {class_names[p]} ({n})"} for n, t, p in cells]


def heatmap_cells(confusion, normalise: bool, errors_only: bool = False) -> tuple[np.ndarray, list[list[str]]]:
    """(values to colour, cell text) of a confusion matrix: counts, or percent of each true class.

    With `errors_only` the diagonal is left uncoloured (NaN) so the colour scale spans the mistakes;
    its text is still shown.
    """
    c = np.asarray(confusion)
    values = metrics.row_normalise(c) if normalise else c.astype(np.float64)
    fmt = "{:.1f}" if normalise else "{:.0f}"
    text = [[fmt.format(v) if v else "" for v in row] for row in values]
    if errors_only:
        values = values.copy()
        np.fill_diagonal(values, np.nan)
    return values, text


def colour_max(confusions: Sequence, normalise: bool, errors_only: bool) -> float | None:
    """One colour-scale maximum for several matrices (an epoch replay), so colours compare across them."""
    peaks = [np.nanmax(v) for v in (heatmap_cells(c, normalise, errors_only)[0] for c in confusions)
             if np.any(np.isfinite(v))]
    return float(max(peaks)) if peaks else None


def cell_from_selection(selection, class_names: Sequence[str]) -> tuple[int, int] | None:
    """(true, predicted) of the first clicked confusion-matrix cell in a plotly selection, or None.

    Points are read from `customdata` [true, pred] when present, else from the axis labels (x =
    predicted class name, y = true class name) as a heatmap reports them.
    """
    points = ((selection or {}).get("selection") or {}).get("points") or []
    names = [str(n) for n in class_names]
    for point in points:
        custom = point.get("customdata")
        if isinstance(custom, (list, tuple)) and len(custom) >= 2:
            try:
                t, p = int(custom[0]), int(custom[1])
            except (TypeError, ValueError):
                t = p = -1
            if 0 <= t < len(names) and 0 <= p < len(names):
                return t, p
        x, y = str(point.get("x")), str(point.get("y"))
        if x in names and y in names:
            return names.index(y), names.index(x)
    return None


def hard_pairs(dataset: str, class_names: Sequence[str]) -> list[dict]:
    """The known hard pairs of a dataset (core.analysis.errors.HARD_PAIRS) as title and class indices."""
    n = len(class_names)
    return [{"title": title, "a": a, "b": b} for title, a, b in analysis.HARD_PAIRS.get(dataset, [])
            if 0 <= a < n and 0 <= b < n]


def gallery_items(probs, labels, indices, class_names: Sequence[str], k: int = 3) -> list[dict]:
    """For each index: true and predicted class (index and name), confidence, and the top-k (name, prob)."""
    pr = np.asarray(probs)
    y = metrics.as_labels(labels)
    idx = metrics.as_labels(indices, "indices")
    if pr.ndim != 2 or pr.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be (N, C) with N = {y.shape[0]}, got shape {pr.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= y.shape[0]):
        raise ValueError(f"indices must lie in [0, {y.shape[0]})")
    rows = metrics.as_probs(pr[idx]) if idx.size else np.zeros((0, pr.shape[1]))
    order = np.argsort(-rows, axis=1, kind="stable")[:, :min(k, pr.shape[1])]
    items = []
    for row, i, top in zip(rows, idx, order, strict=True):
        items.append({"index": int(i), "true": int(y[i]), "pred": int(top[0]), "confidence": float(row[top[0]]),
                      "true_name": str(class_names[y[i]]), "pred_name": str(class_names[top[0]]),
                      "top": [(str(class_names[c]), float(row[c])) for c in top]})
    return items


def tile_caption(item: dict) -> str:
    """Markdown under a gallery tile: '#12 · true **Shirt** → **T-shirt/top**', then the top-k probabilities."""
    top = " · ".join(f"{name} {p:.1%}" for name, p in item["top"])
    return f"#{item['index']} · true **{item['true_name']}** → **{item['pred_name']}**  \n{top}"


def images_match(split_labels, stored_labels) -> bool:
    """True when the test split on this machine is the one the run was scored on (same labels, same order)."""
    a, b = np.asarray(split_labels), np.asarray(stored_labels)
    return a.shape == b.shape and bool(np.array_equal(a.astype(np.int64), b.astype(np.int64)))


def confidence_bounds(low: float, high: float) -> tuple[float, float]:
    """A (min, max) confidence range clipped to [0, 1], swapped if given the wrong way round."""
    lo, hi = sorted((min(max(float(low), 0.0), 1.0), min(max(float(high), 0.0), 1.0)))
    return lo, hi


def to_csv(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """CSV text (header and one line per row; None blank) of table rows; columns default to the first row's keys."""
    return compare.comparison_csv(list(rows), list(columns or (rows[0].keys() if rows else [])))
