"""Score a run on the official test set: `python -m core.evaluate RUN_DIR --json`.

Uses the test outputs stored at the end of training; computes them from best.pt when absent (and stores them,
except in a shipped pretrained run: those are read-only).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from core.analysis import metrics
from core.data.datasets import DataUnavailableError, get_dataset, load_split
from core.inference.engine import predict_probs
from core.store import atomic, runs
from core.store.checkpoint import CheckpointError, load_model


def test_outputs(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(probs [N,10] float32, labels [N]) for the run's best model, from the store or computed (and stored, except
    in a shipped pretrained run, which is read-only)."""
    run_dir = Path(run_dir)
    if (run_dir / "test_outputs.npz").is_file():
        return runs.load_test_outputs(run_dir)
    loaded = load_model(run_dir)
    images, labels = load_split(loaded.dataset, train=False)
    probs = predict_probs(loaded.model, images, loaded.mean, loaded.std, tta_flip=loaded.tta_flip)
    if not runs.is_shipped(run_dir):
        atomic.write_npz(run_dir / "test_outputs.npz", probs=probs.numpy().astype(np.float16),
                         labels=labels.numpy().astype(np.uint8))
    return probs.numpy(), labels.numpy().astype(np.int64)


def evaluate_run(run_dir: Path) -> dict:
    """Test accuracy, top-3 accuracy, macro/weighted F1, per-class metrics and confusion matrix of a run."""
    run_dir = Path(run_dir)
    config = runs.read_json(run_dir / "config.json") or {}
    spec = get_dataset(config.get("dataset", "mnist"))
    probs, labels = test_outputs(run_dir)
    report = metrics.classification_report(labels, probs.argmax(1), len(spec.classes), list(spec.classes))
    return {"run": run_dir.name, "dataset": spec.name, "model": config.get("model"),
            "test_acc": report["accuracy"], "top3_acc": metrics.top_k_accuracy(labels, probs, 3),
            "macro_f1": report["macro"]["f1"], "weighted_f1": report["weighted"]["f1"],
            "per_class": report["per_class"], "confusion": report["confusion"]}


def format_report(result: dict) -> str:
    """A plain-text table of an evaluation result."""
    lines = [f"{result['run']} ({result['dataset']}, {result['model']}): test accuracy {result['test_acc']:.4f}, "
             f"macro F1 {result['macro_f1']:.4f}",
             f"{'class':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for row in result["per_class"]:
        lines.append(f"{row['name']:<14}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}"
                     f"{row['support']:>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.evaluate",
                                     description="Test-set metrics of a trained run.")
    parser.add_argument("run", help="run directory, or the name of a run in checkpoints/runs or pretrained")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    try:
        result = evaluate_run(runs.resolve_run_path(args.run))
    except (FileNotFoundError, CheckpointError, DataUnavailableError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
