"""Ready-made experiments that reproduce the reference projects, each in a quick and a full variant.

A quick variant trains on a subset for a couple of epochs (a few minutes on 2 cores, for seeing an effect
and its error bar); the full one uses the whole training split and the published epochs. Every ready-made
repeats each configuration (seeds, or the folds of a cross-validation) so every effect has an error bar.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from core.experiments.spec import ExperimentSpec
from core.training.presets import get_preset

# What a quick variant may cost at most: trials x epochs x training images. The enhanced CNN trained at 260
# (batch norm) to 430 (without) images/s on this 2-core machine, measured by hand on real Fashion-MNIST, so
# 100,000 images is about 5 minutes of training; the unit tests hold every quick variant to it.
QUICK_IMAGE_BUDGET = 100_000
# Quick variants validate on 5% of the training split (3,000 images): enough to see a point of accuracy,
# and the validation pass after each epoch no longer costs more than the training on a subset.
QUICK = {"val_fraction": 0.05}
FULL_TRAIN_IMAGES = 60_000  # both datasets' training split


@dataclass(frozen=True)
class ReadyExperiment:
    """A one-click experiment: a preset as the base, the grid around it, and its quick/full settings."""

    key: str
    title: str
    question: str  # what it answers, in one sentence for the page
    preset: str
    grid: dict
    repeats: int
    base: dict  # on top of the preset, for both variants
    quick: dict  # on top of base, for the quick variant
    full: dict  # on top of base, for the full variant
    dataset: str = "fashion-mnist"
    quick_repeats: int | None = None  # repeats of the quick variant (default: repeats)
    quick_grid: dict | None = None  # the quick variant's grid (default: grid)

    def spec(self, dataset: str | None = None, quick: bool = True, name: str | None = None) -> ExperimentSpec:
        """The validated ExperimentSpec of this ready-made (named KEY-quick-TIME unless `name` is given)."""
        dataset = dataset or self.dataset
        variant = "quick" if quick else "full"
        overrides = {**self.base, **(QUICK if quick else {}), **(self.quick if quick else self.full)}
        base = get_preset(self.preset).config(dataset, **overrides).to_dict()
        repeats = (self.quick_repeats or self.repeats) if quick else self.repeats
        grid = (self.quick_grid or self.grid) if quick else self.grid
        spec = ExperimentSpec(name=name or f"{self.key}-{variant}-{time.strftime('%Y%m%d-%H%M%S')}",
                              dataset=dataset, base=base, grid={k: list(v) for k, v in grid.items()},
                              repeats=repeats, title=f"{self.title} ({variant})")
        return spec.validate()


def quick_cost(spec: ExperimentSpec) -> int:
    """Training images a spec's trials go through at most: trials x epochs x training images per epoch."""
    base = spec.base
    train_images = base.get("subset") or FULL_TRAIN_IMAGES
    epochs = max([base["epochs"], *[int(v) for v in spec.grid.get("epochs", [])]])
    return spec.n_trials() * epochs * train_images


_TUTORIAL_CNN = {"optimizer": "adam", "lr": 1e-3, "schedule": "constant", "batch_size": 64}

READY: dict[str, ReadyExperiment] = {r.key: r for r in [
    ReadyExperiment(
        "batchnorm", "Does batch norm help?",
        "The base-vs-enhanced ablation: batch norm on/off x dropout on/off x vertical flips on/off on the "
        "enhanced CNN. Is the enhanced net's gain more than seed-to-seed noise, and which change brings it?",
        preset="cnn_enhanced",
        # the reference value of each factor first: effects read as "turning it on changes accuracy by ...";
        # batch norm is the last axis before the seeds, so it alternates soonest: its effect, with an error bar,
        # shows after the first four trials
        grid={"vflip": [False, True], "model.dropout": [0.0, 0.25], "model.batch_norm": [False, True]},
        repeats=3, quick_repeats=2,
        base={"model_kwargs": {"batch_norm": False, "dropout": 0.0}, "vflip": False},
        quick={"subset": 2000, "epochs": 2, "batch_size": 64}, full={"epochs": 10}),
    ReadyExperiment(
        "baselines", "Baselines: linear vs MLP vs CNN",
        "How much does each step up in model capacity buy: logistic regression, a two-layer MLP, the tutorial CNN?",
        preset="cnn_basic", grid={"model": ["linear", "mlp", "cnn_basic"]}, repeats=3,
        base=_TUTORIAL_CNN, quick={"subset": 5000, "epochs": 2}, full={"epochs": 10}),
    ReadyExperiment(
        "lr_batch", "Learning rate x batch size for the under-100k CNN",
        "Which learning rate and batch size suit cnn_small (under 100k parameters), judged by 5-fold "
        "cross-validation (each configuration trained once per fold)? The quick variant tries the corners "
        "with 2 seeds instead of folds (a fold validates on 12,000 images, too slow for a quick look).",
        preset="cnn_small",
        grid={"lr": [1e-3, 3e-3, 1e-2], "batch_size": [64, 128, 256]}, repeats=5,
        base={}, quick={"subset": 3000, "epochs": 2, "lr": 1e-3, "batch_size": 64}, full={"folds": 5, "epochs": 10},
        quick_grid={"lr": [1e-3, 1e-2], "batch_size": [64, 256]}, quick_repeats=2),
    ReadyExperiment(
        "cnn2_lenet5", "2-conv CNN vs LeNet-5",
        "The two-conv tutorial CNN against LeNet-5, trained the same way: which one wins, and by more than noise?",
        preset="cnn2", grid={"model": ["cnn2", "lenet5"]}, repeats=3,
        base=_TUTORIAL_CNN, quick={"subset": 5000, "epochs": 2}, full={"epochs": 10}, dataset="mnist"),
]}


def ready_spec(key: str, dataset: str | None = None, quick: bool = True, name: str | None = None) -> ExperimentSpec:
    """The spec of ready-made `key`, or a ValueError listing the known ones."""
    if key not in READY:
        raise ValueError(f"unknown ready-made experiment {key!r}; choose one of: {', '.join(READY)}")
    return READY[key].spec(dataset, quick, name)
