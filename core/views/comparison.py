"""What the Compare page shows, as pure functions: the comparison table, learning curves, per-class F1,
where B gains over A, the fixed/broken galleries and each model's probabilities for one input.

Tables are lists of plain dicts (one per row), ready for pandas, plotly or core.compare's exports.
Model A is the reference and B the candidate, as in core.compare.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from core.analysis.compare import best_per_column
from core.analysis.errors import top_k
from core.analysis.metrics import as_labels, as_probs, classification_report
from core.store.events import epoch_events, number
from core.store.runs import load_test_outputs

COLUMNS = ("run", "model", "test accuracy", "macro F1", "parameters", "training s", "epochs", "size MB",
           "latency p50 ms", "latency p95 ms")
# Which way is better, per ranked column (epochs are not ranked: more is neither better nor worse).
BEST = {"test accuracy": "max", "macro F1": "max", "parameters": "min", "training s": "min", "size MB": "min",
        "latency p50 ms": "min", "latency p95 ms": "min"}
FORMATS = {"test accuracy": "{:.2%}", "macro F1": "{:.4f}", "parameters": "{:,.0f}", "training s": "{:.1f}",
           "epochs": "{:.0f}", "size MB": "{:.2f}", "latency p50 ms": "{:.2f}", "latency p95 ms": "{:.2f}"}
CURVE_METRICS = ("val accuracy", "val loss", "train accuracy", "train loss")
_EVENT_KEYS = {"val accuracy": "val_acc", "val loss": "val_loss", "train accuracy": "train_acc",
               "train loss": "train_loss"}


# --- the table -------------------------------------------------------------------------------


def outputs_report(probs, labels, class_names) -> dict:
    """core.analysis.metrics.classification_report of the stored test outputs (argmax predictions)."""
    p = as_probs(probs)
    return classification_report(as_labels(labels), p.argmax(1), p.shape[1], list(class_names))


def checkpoint_size_bytes(run_dir: Path) -> int | None:
    """Size of the weights the app loads for a run (best.pt, else last.pt), or None when neither exists."""
    for name in ("best.pt", "last.pt"):
        try:
            return (Path(run_dir) / name).stat().st_size
        except OSError:
            continue
    return None


def table_row(label: str, model: str | None, summary: dict | None, report: dict | None = None,
              size_bytes: int | None = None, latency: dict | None = None) -> dict:
    """One row of the comparison table. Accuracy and macro F1 come from `report` (the stored test
    outputs) when given, else from the run's summary; missing values are None."""
    summary = summary or {}
    latency = latency or {}
    acc = report["accuracy"] if report else summary.get("test_acc")
    f1 = report["macro"]["f1"] if report else summary.get("macro_f1")
    size = number(size_bytes)
    params = number(summary.get("params"))
    epochs = number(summary.get("epochs"))
    return {
        "run": label, "model": model or "?", "test accuracy": number(acc), "macro F1": number(f1),
        "parameters": None if params is None else int(params), "training s": number(summary.get("train_seconds")),
        "epochs": None if epochs is None else int(epochs), "size MB": None if size is None else size / 1e6,
        "latency p50 ms": number(latency.get("p50_ms")), "latency p95 ms": number(latency.get("p95_ms")),
    }


def best_mask(table: list[dict]) -> list[dict[str, bool]]:
    """For each row, which ranked columns (BEST) hold that column's best value (ties all count)."""
    best = best_per_column(table, BEST)
    return [{c: best[c] is not None and row.get(c) == best[c] for c in BEST} for row in table]


def default_pair(table: list[dict]) -> tuple[int, int]:
    """Row indices (A, B) to compare first: A the lowest test accuracy, B the highest (first on ties)."""
    if len(table) < 2:
        raise ValueError("need at least two runs to pick a pair")
    acc = [row.get("test accuracy") for row in table]
    score = [-math.inf if a is None else a for a in acc]
    a, b = int(np.argmin(score)), int(np.argmax(score))
    return (a, b) if a != b else (0, 1)


def mismatched_test_sets(labels_by_run: dict[str, np.ndarray]) -> list[str]:
    """Runs whose stored test labels differ from those most runs share (first run's on a tie): another
    version or size of the test set, which cannot be compared image by image."""
    groups: list[list[str]] = []  # runs with identical labels, in order of first appearance
    for name, labels in labels_by_run.items():
        group = next((g for g in groups if np.array_equal(labels_by_run[g[0]], labels)), None)
        if group is None:
            groups.append([name])
        else:
            group.append(name)
    if not groups:
        return []
    keep = set(max(groups, key=len))
    return [n for n in labels_by_run if n not in keep]


def comparable_outputs(paths: dict[str, Path], num_classes: int, load=load_test_outputs,
                       ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """The stored test outputs (probs, labels) of each run that can be compared image by image, and one
    message per run left out: its file cannot be read, its shape is not (N, num_classes) for N labels, or
    its labels differ from those most runs share (mismatched_test_sets). `load(run_dir)` reads a run's
    outputs (a page passes its cached reader)."""
    outputs, messages = {}, []
    for name, path in paths.items():
        try:
            probs, labels = load(path)
        except Exception as err:  # a damaged npz is the file's fault: say so and leave the run out
            messages.append(f"{name}: the stored test outputs cannot be read ({type(err).__name__}: {err}); left out.")
            continue
        if probs.ndim != 2 or probs.shape[1] != num_classes or len(probs) != len(labels) or not len(labels):
            messages.append(f"{name}: the stored test outputs have shape {probs.shape} for {len(labels)} labels, "
                            f"not {num_classes} classes per image; left out.")
            continue
        outputs[name] = (probs, labels)
    for name in mismatched_test_sets({n: o[1] for n, o in outputs.items()}):
        messages.append(f"{name}: its stored test labels differ from the other runs' (another version or size of "
                        "the test set), so it cannot be compared image by image; left out.")
        outputs.pop(name)
    return outputs, messages


# --- learning curves and per-class F1 --------------------------------------------------------


def learning_curves(events_by_run: dict[str, list[dict]]) -> list[dict]:
    """One row per run and epoch from its 'epoch' events: epoch, training s (elapsed), val/train accuracy
    and loss (None where a run has no validation split). A repeated epoch (after a resume) keeps its last event."""
    rows = []
    for name, events in events_by_run.items():
        for epoch, event in epoch_events(events).items():
            row = {"run": name, "epoch": epoch, "training s": number(event.get("elapsed"))}
            row.update({metric: number(event.get(key)) for metric, key in _EVENT_KEYS.items()})
            rows.append(row)
    return rows


def has_values(rows: list[dict], column: str) -> bool:
    """True when some row has a value in `column`."""
    return any(row.get(column) is not None for row in rows)


def per_class_f1(reports: dict[str, dict]) -> list[dict]:
    """Rows (run, class, F1) for grouped bars, classes in their dataset order."""
    return [{"run": name, "class": row["name"], "F1": row["f1"]}
            for name, report in reports.items() for row in report["per_class"]]


# --- one pair A/B ----------------------------------------------------------------------------


def class_gains(report_a: dict, report_b: dict) -> list[dict]:
    """Per class: test images each model gets right, the change (B minus A) and both F1s; biggest gain first."""
    conf_a, conf_b = np.asarray(report_a["confusion"]), np.asarray(report_b["confusion"])
    if conf_a.shape != conf_b.shape:
        raise ValueError(f"the two reports have different classes: {conf_a.shape} vs {conf_b.shape}")
    rows = []
    for i, (row_a, row_b) in enumerate(zip(report_a["per_class"], report_b["per_class"], strict=True)):
        right_a, right_b = int(conf_a[i, i]), int(conf_b[i, i])
        rows.append({"class": row_a["name"], "A right": right_a, "B right": right_b, "change": right_b - right_a,
                     "F1 A": row_a["f1"], "F1 B": row_b["f1"]})
    return sorted(rows, key=lambda r: -r["change"])  # stable: dataset order on ties


def gain_summary(name_a: str, name_b: str, report_a: dict, report_b: dict, top: int = 3) -> str:
    """The overall gain of B over A in test images and points, and the classes it comes from."""
    conf_a, conf_b = np.asarray(report_a["confusion"]), np.asarray(report_b["confusion"])
    n = int(conf_a.sum())
    right_a, right_b = int(np.trace(conf_a)), int(np.trace(conf_b))
    diff = right_b - right_a
    accs = f"({report_a['accuracy']:.2%} → {report_b['accuracy']:.2%}, {100 * (right_b - right_a) / n:+.2f} points)"
    if diff == 0:
        text = f"{name_a} and {name_b} get the same number of the {n:,} test images right {accs}."
    else:
        more = "more" if diff > 0 else "fewer"
        text = f"{name_b} gets {abs(diff):,} {more} of the {n:,} test images right than {name_a} {accs}."
    gains = class_gains(report_a, report_b)
    ups = [f"{g['class']} ({g['change']:+d})" for g in gains if g["change"] > 0][:top]
    downs = [f"{g['class']} ({g['change']:+d})" for g in reversed(gains) if g["change"] < 0][:top]
    if ups:
        text += f" {name_b} gains most on {', '.join(ups)}."
    if downs:
        text += f" It loses most on {', '.join(downs)}."
    return text


def improvement_for_b(diff) -> np.ndarray:
    """Colour values for a confusion difference (B minus A): positive where B is better. On the diagonal
    more right answers are better; off it, more of a mistake is worse, so the sign flips."""
    d = np.asarray(diff, dtype=np.int64)
    return np.where(np.eye(d.shape[0], dtype=bool), d, -d)


def gallery_tiles(indices, labels, probs_a, probs_b, limit: int | None = None) -> list[dict]:
    """Tiles for a gallery of test images: index, true class, both predictions and confidences.

    Largest swing first: how far the two models' probabilities for the true class lie apart."""
    y = as_labels(labels)
    pa, pb = as_probs(probs_a, "probs_a"), as_probs(probs_b, "probs_b")
    idx = as_labels(indices, "indices")
    swing = np.abs(pb[idx, y[idx]] - pa[idx, y[idx]])
    order = idx[np.argsort(-swing, kind="stable")]
    if limit is not None:
        order = order[:max(0, limit)]
    tiles = []
    for i in order:
        a, b = int(pa[i].argmax()), int(pb[i].argmax())
        tiles.append({"index": int(i), "true": int(y[i]), "pred_a": a, "pred_b": b,
                      "conf_a": float(pa[i, a]), "conf_b": float(pb[i, b])})
    return tiles


def tile_caption(tile: dict, class_names) -> str:
    """'true Shirt · A Coat 71% · B Shirt 88%'."""
    names = list(class_names)
    return (f"true {names[tile['true']]} · A {names[tile['pred_a']]} {tile['conf_a']:.0%} · "
            f"B {names[tile['pred_b']]} {tile['conf_b']:.0%}")


def upscale(image, factor: int) -> np.ndarray:
    """A grey image scaled up by an integer factor with crisp (nearest-neighbour) pixels."""
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"expected a grey image (H, W), got shape {a.shape}")
    return np.repeat(np.repeat(a, factor, axis=0), factor, axis=1)


# --- the same input, every model -------------------------------------------------------------


def probability_rows(probs_by_run: dict[str, np.ndarray], class_names) -> list[dict]:
    """Rows (run, class, probability) of each model's probabilities for one image, for grouped bars."""
    names = list(class_names)
    rows = []
    for run, probs in probs_by_run.items():
        p = np.asarray(probs, dtype=np.float64).reshape(-1)
        if p.shape[0] != len(names):
            raise ValueError(f"{run}: {p.shape[0]} probabilities for {len(names)} classes")
        rows += [{"run": run, "class": names[c], "probability": float(p[c])} for c in range(len(names))]
    return rows


def top_predictions(probs_by_run: dict[str, np.ndarray], class_names) -> list[dict]:
    """Per model: its prediction with confidence, and the runner-up."""
    names = list(class_names)
    rows = []
    for run, probs in probs_by_run.items():
        (first, p1), (second, p2) = top_k(np.asarray(probs, dtype=np.float64).reshape(1, -1), 0, k=2)
        rows.append({"run": run, "prediction": names[first], "confidence": p1,
                     "runner-up": names[second], "runner-up probability": p2})
    return rows
