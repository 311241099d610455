"""Named presets: a reference architecture with the settings it was published with, or ours."""

from __future__ import annotations

from dataclasses import dataclass

from core.training.config import TrainConfig


@dataclass(frozen=True)
class Preset:
    """A named set of TrainConfig overrides; `per_dataset` refines them for one dataset."""

    name: str
    title: str
    settings: dict
    per_dataset: dict

    def config(self, dataset: str, **overrides) -> TrainConfig:
        """The full, validated config of this preset for `dataset`, with `overrides` on top."""
        values = {"dataset": dataset, **self.settings, **self.per_dataset.get(dataset, {}), **overrides}
        return TrainConfig.from_dict(values)


_TUTORIAL = {"optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0, "schedule": "constant",
             "batch_size": 64, "label_smoothing": 0.0}
_FAST = {"model": "fast", "epochs": 8, "batch_size": 128, "optimizer": "nesterov", "lr": 0.2,
         "weight_decay": 5e-4, "schedule": "onecycle", "warmup": 0.1, "label_smoothing": 0.1, "translate": 1}
# clothes: the fast net with two convs per stage (2.2x an epoch's cost; the one-conv net stalls near 93.3%), 10 epochs,
# erasing except in the last, flips, weight averaging (better models mid-run): 93.88% at 4.8R (bench/train_speed.py)
_FAST_CLOTHES = {"model_kwargs": {"depth": 2}, "epochs": 10, "ema": 0.995, "translate": 0, "erase": 0.25,
                 "clean_epochs": 1, "hflip": True, "tta_flip": True}
_FLIP_FOR_CLOTHES = {"fashion-mnist": {"hflip": True, "tta_flip": True}}

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("fast", "fast: our CPU-fast net, one-cycle SGD, label smoothing (default)",
           _FAST,
           {"mnist": {"epochs": 1}, "fashion-mnist": _FAST_CLOTHES}),
    # digits to 99.6% in about 2R (bench/speed_ratios.py): the two-conv-per-stage fast net for 3 epochs
    Preset("fast_mnist", "fast_mnist: the deeper fast net for 3 epochs on digits (99.6% target; clothes as `fast`)",
           _FAST, {"mnist": {"epochs": 3, "model_kwargs": {"depth": 2}}, "fashion-mnist": _FAST_CLOTHES}),
    Preset("best", "best accuracy: the wide fast net, long one-cycle run with augmentation",
           {"model": "fast_wide", "epochs": 16, "batch_size": 256, "optimizer": "nesterov", "lr": 0.1,
            "weight_decay": 5e-4, "schedule": "onecycle", "warmup": 0.15, "label_smoothing": 0.1,
            "translate": 2, "erase": 0.25},
           # digits: the robustness probe's own changes as augmentation (rotations to 15 degrees, zooms of 0.8-1.2x,
           # thinner or thicker strokes). Seeds 0 and 1: answers kept under the probe's changes 99.80% on average,
           # 99.59% under the worst (rotate 10 alone: 99.70%, 99.37%); test accuracy 99.67%, 99.73% (rotate 10
           # alone: 99.72%, 99.71%), a mean 1.5 images lower, inside the seeds' spread
           {"mnist": {"epochs": 10, "rotate": 15.0, "scale": 0.2, "stroke": 0.5, "erase": 0.0, "translate": 2},
            "fashion-mnist": {"epochs": 40, "hflip": True, "tta_flip": True}}),  # ~15 min on 2 cores
    # the record on a GPU: ResNet-18 one-cycle, 18 epochs. On an H200 (bf16, data on the GPU) clothes reached 95.25%
    # (seed 0) after 90 s, 12.5R; on a CPU it costs about 9x the multiply-adds of `best` an image: hours on 2 cores
    Preset("record_gpu", "record_gpu: ResNet-18, 18 epochs, one-cycle, erasing and flips (for a GPU; hours on a CPU)",
           {"model": "resnet18", "epochs": 18, "batch_size": 128, "optimizer": "nesterov", "lr": 0.1,
            "weight_decay": 5e-4, "schedule": "onecycle", "warmup": 0.15, "label_smoothing": 0.1, "translate": 2},
           {"fashion-mnist": {"erase": 0.25, "clean_epochs": 1, "hflip": True, "tta_flip": True}}),
    Preset("linear", "linear: logistic regression, Adam 1e-3, 10 epochs",
           {"model": "linear", "epochs": 10, **_TUTORIAL, "batch_size": 128}, {}),
    Preset("mlp", "mlp: two hidden layers, Adam 1e-3, 10 epochs",
           {"model": "mlp", "epochs": 10, **_TUTORIAL, "batch_size": 128}, {}),
    Preset("cnn2", "cnn2: 2-conv CNN, Adam 1e-3, 5 epochs (PyTorch tutorial)",
           {"model": "cnn2", "epochs": 5, **_TUTORIAL, "batch_size": 100}, {}),
    Preset("cnn_basic", "cnn_basic: the tutorial CNN, Adam 1e-3, batch 64, 5 epochs",
           {"model": "cnn_basic", "epochs": 5, **_TUTORIAL}, {}),
    Preset("lenet5", "lenet5: LeNet-5, SGD momentum 0.01, 10 epochs",
           {"model": "lenet5", "epochs": 10, **_TUTORIAL, "optimizer": "momentum", "lr": 0.01}, {}),
    Preset("cnn_base", "cnn_base: conv/ReLU/max-pool/dense, Adam 1e-3, 10 epochs",
           {"model": "cnn_base", "epochs": 10, **_TUTORIAL, "batch_size": 128}, {}),
    Preset("cnn_enhanced", "cnn_enhanced: batch norm + dropout, Adam 1e-3, 10 epochs",
           {"model": "cnn_enhanced", "epochs": 10, **_TUTORIAL, "batch_size": 128}, {}),
    Preset("cnn_small", "cnn_small: under 100k parameters, Adam, one-cycle, 10 epochs",
           {"model": "cnn_small", "epochs": 10, **_TUTORIAL, "batch_size": 128, "schedule": "onecycle",
            "lr": 3e-3, "translate": 1}, {}),
    Preset("resnet18", "resnet18: ResNet-18 (slow on CPU), SGD momentum, cosine, 5 epochs",
           {"model": "resnet18", "epochs": 5, "batch_size": 128, "optimizer": "momentum", "lr": 0.05,
            "weight_decay": 5e-4, "schedule": "cosine", "translate": 2}, _FLIP_FOR_CLOTHES),
]}


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a ValueError listing the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
