"""Finished runs made in a moment for the share tests: a registered model with random weights, scored on the data
that $MNIST_STUDIO_DATA points at (the tiny synthetic set under the `store` fixture)."""

from __future__ import annotations

from pathlib import Path

import torch

from core.data.datasets import get_dataset
from core.evaluate import evaluate_run
from core.models.registry import create_model
from core.store import atomic, runs
from core.store.checkpoint import save_checkpoint
from tests.conftest import tiny_config


def make_run(root: Path, name: str, model: str = "cnn2", dataset: str = "mnist", tta_flip: bool = False,
             seed: int = 0) -> Path:
    """root/name: config, completed status, best.pt (random weights), test outputs and a summary."""
    config = tiny_config(model=model, dataset=dataset, tta_flip=tta_flip).to_dict()
    path = Path(root) / name
    writer = runs.RunWriter.create(path, config, state="running")
    torch.manual_seed(seed)
    save_checkpoint(path / "best.pt", create_model(model), arch=model, model_kwargs={}, dataset=dataset,
                    class_names=list(get_dataset(dataset).classes), mean=0.13, std=0.31, config=config)
    result = evaluate_run(path)  # stores test_outputs.npz
    atomic.write_json(path / "summary.json", {"dataset": dataset, "model": model, "test_acc": result["test_acc"],
                                              "macro_f1": result["macro_f1"], "epochs": 1, "best_epoch": 1})
    writer.log({"type": "epoch", "epoch": 1, "train_loss": 2.3, "val_acc": result["test_acc"]})
    writer.set_status("completed")
    return path
