"""`TrainConfig`: the one dataclass that carries a run's settings from the form or CLI to the training loop."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field, fields

from core.data.augment import AugmentSpec
from core.data.datasets import DATASETS
from core.models.registry import model_names

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


# The Train form's field groups, in the order it shows them (each field names its own in its metadata).
OPTIMISER = "Optimiser"
SCHEDULE = "Learning-rate schedule"
REGULARISATION = "Regularisation and augmentation"
VALIDATION = "Validation and data"
HARDWARE = "Hardware"
GROUPS = (OPTIMISER, SCHEDULE, REGULARISATION, VALIDATION, HARDWARE)

RUN_METADATA = ("experiment",)  # keys a run's config.json may hold beside the settings (not settings themselves)


class ConfigError(ValueError):
    """One or more settings are invalid; `messages` has one line per bad field."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


def _f(default, help: str, **extra):
    """A dataclass field with a help text (shown by --help and in the Train form); `extra` holds `choices`,
    bounds (`low`, `high`, `low_open`) and the Train form's `group` (one of GROUPS)."""
    factory = extra.pop("factory", None)
    meta = {"help": help, **extra}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

    dataset: str = _f("fashion-mnist", "dataset to train on", choices=tuple(DATASETS))
    model: str = _f("fast", "architecture from the model zoo")
    model_kwargs: dict = _f(None, "extra model arguments as JSON, e.g. '{\"dropout\": 0.3}'", factory=dict,
                            group=REGULARISATION)
    epochs: int = _f(5, "passes over the training split", low=1, high=1000, group=OPTIMISER)
    batch_size: int = _f(128, "images per optimiser step (global, across all processes)", low=1, high=8192,
                         group=OPTIMISER)
    optimizer: str = _f("nesterov", "sgd, momentum (SGD+momentum), nesterov, adam or adamw", choices=OPTIMIZERS,
                        group=OPTIMISER)
    lr: float = _f(0.2, "peak learning rate", low=0.0, low_open=True, high=100.0, group=OPTIMISER)
    momentum: float = _f(0.9, "momentum for momentum/nesterov (beta1 for Adam)", low=0.0, high=0.999, group=OPTIMISER)
    weight_decay: float = _f(5e-4, "L2 weight decay", low=0.0, high=1.0, group=OPTIMISER)
    schedule: str = _f("onecycle", "learning-rate schedule: constant, step, cosine or onecycle", choices=SCHEDULES,
                       group=SCHEDULE)
    warmup: float = _f(0.1, "onecycle: fraction of steps spent warming up", low=0.0, high=0.9, group=SCHEDULE)
    step_every: int = _f(10, "step schedule: epochs between decays", low=1, high=1000, group=SCHEDULE)
    step_gamma: float = _f(0.1, "step schedule: factor applied at each decay", low=0.0, low_open=True, high=1.0,
                           group=SCHEDULE)
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy target", low=0.0, high=0.5,
                                group=REGULARISATION)
    ema: float = _f(0.0, "weight averaging: validate, keep and test a moving average of the weights with this "
                          "decay per step (0 = off; 0.99 averages over about the last 100 steps)", low=0.0, high=0.9999,
                          group=OPTIMISER)
    translate: int = _f(0, "augmentation: max random shift in pixels (0 = off)", low=0, high=8, group=REGULARISATION)
    hflip: bool = _f(False, "augmentation: random left-right flip (clothes, not digits)", group=REGULARISATION)
    vflip: bool = _f(False, "augmentation: random top-bottom flip", group=REGULARISATION)
    rotate: float = _f(0.0, "augmentation: max random rotation in degrees (0 = off)", low=0.0, high=180.0,
                       group=REGULARISATION)
    erase: float = _f(0.0, "augmentation: probability of random erasing (0 = off)", low=0.0, high=1.0,
                      group=REGULARISATION)
    scale: float = _f(0.0, "augmentation: max random zoom as a fraction (0.2 = 0.8x to 1.2x; 0 = off)", low=0.0,
                      high=0.5, group=REGULARISATION)
    stroke: float = _f(0.0, "augmentation: probability of thinner or thicker strokes, half a pixel each side "
                            "(0 = off)", low=0.0, high=1.0, group=REGULARISATION)
    clean_epochs: int = _f(0, "augmentation: train the last N epochs on unaltered images, flips kept (0 = off)",
                           low=0, high=1000, group=REGULARISATION)
    tta_flip: bool = _f(False, "evaluate with left-right flip test-time averaging (clothes)", group=REGULARISATION)
    val_fraction: float = _f(0.1, "share of the training split held out for validation", low=0.0, high=0.5,
                             group=VALIDATION)
    folds: int = _f(1, "k-fold cross-validation: train K models, one per fold (1 = off)", low=1, high=20,
                    group=VALIDATION)
    fold: int = _f(0, "which fold this run validates on (set by --folds)", low=0, high=19, group=VALIDATION)
    patience: int = _f(0, "early stopping: epochs without validation gain (0 = off)", low=0, high=1000,
                       group=VALIDATION)
    seed: int = _f(0, "random seed (data split, shuffling, augmentation, initialisation)", low=0, high=2**31 - 1,
                   group=VALIDATION)
    subset: int = _f(0, "train on only the first N training images (0 = all); for quick trials", low=0, high=10**7,
                     group=VALIDATION)
    limit_batches: int = _f(0, "stop each epoch after N batches (0 = all); for smoke tests", low=0, high=10**7,
                            group=VALIDATION)
    monitor_test: bool = _f(False, "benchmarks only: also score the test set after each epoch (logged as "
                                   "test_acc, never used for model selection, not counted as training time)",
                                   group=VALIDATION)
    device: str = _f("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda or mps", choices=DEVICES, group=HARDWARE)
    precision: str = _f("auto", "auto (bf16 on CUDA and on CPUs with native bf16, else fp32), fp32 or bf16 autocast",
                        choices=PRECISIONS, group=HARDWARE)
    channels_last: bool = _f(True, "channels-last memory format for conv nets (applied on CUDA and under bf16, "
                                   "where it is faster)", group=HARDWARE)
    threads: int = _f(0, "CPU threads for PyTorch (0 = all cores)", low=0, high=256, group=HARDWARE)

    def augment(self, epoch: int = 1) -> AugmentSpec:
        """The augmentation of `epoch` (1-based) as the spec `core.augment` takes: in the last `clean_epochs`
        only the flips, which change no pixel's content."""
        if epoch > self.epochs - self.clean_epochs:
            return AugmentSpec(hflip=self.hflip, vflip=self.vflip)
        return AugmentSpec(self.translate, self.hflip, self.vflip, self.rotate, self.erase,
                           scale=self.scale, stroke=self.stroke)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build and validate a config from a plain dict; unknown keys and wrong types are errors.

        Run metadata in a config.json (RUN_METADATA, e.g. the experiment a trial belongs to) is skipped."""
        known = {f.name: f for f in fields(cls)}
        data = {k: v for k, v in data.items() if k not in RUN_METADATA}
        errors = [f"unknown setting {k!r}" for k in data if k not in known]
        values = {}
        for key, value in data.items():
            if key in known:
                try:
                    values[key] = _coerce(known[key], value)
                except (TypeError, ValueError) as err:
                    errors.append(f"{key}: {err}")
        config = cls(**values)
        errors += config.problems()
        if errors:
            raise ConfigError(errors)
        return config

    def problems(self) -> list[str]:
        """One message per invalid setting, empty when the config is valid."""
        errors = []
        for f in fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if "choices" in meta and value not in meta["choices"]:
                errors.append(f"{f.name} must be one of {', '.join(meta['choices'])}, got {value!r}")
            if "low" in meta:
                errors += _range_problem(f.name, value, meta)
        if self.model not in model_names():
            errors.append(f"model must be one of {', '.join(model_names())}, got {self.model!r}")
        if not isinstance(self.model_kwargs, dict):
            errors.append(f"model_kwargs must be a JSON object, got {self.model_kwargs!r}")
        if self.folds > 1 and self.fold >= self.folds:
            errors.append(f"fold must be below folds ({self.folds}), got {self.fold}")
        if self.folds == 1 and self.val_fraction == 0 and self.patience:
            errors.append("patience needs a validation split: set val_fraction above 0")
        return errors

    def validate(self) -> TrainConfig:
        """Raise ConfigError listing every invalid setting; return self when valid."""
        errors = self.problems()
        if errors:
            raise ConfigError(errors)
        return self


def _range_problem(name: str, value, meta: dict) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [f"{name} must be a number, got {value!r}"]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{name} must be a finite number, got {value}"]
    low, high = meta["low"], meta["high"]
    if value < low or (meta.get("low_open") and value == low):
        return [f"{name} must be {'>' if meta.get('low_open') else '>='} {_shown(low)}, got {_shown(value)}"]
    if value > high:
        return [f"{name} must be <= {_shown(high)}, got {_shown(value)}"]
    return []


def _shown(value: float) -> str:
    """`value` short (1e-05, 100) unless that would round it (100.00000000000001 and 2147483647 stay exact)."""
    if isinstance(value, int):
        return str(value)
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _coerce(f, value):
    """Convert a JSON/CLI value to the field's type, refusing lossy or nonsensical conversions."""
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise TypeError(f"expected true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, bool):
            raise TypeError(f"expected a whole number, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(value) if isinstance(value, (int, str)) else _refuse("a whole number", value)
        except ValueError:
            return _refuse("a whole number", value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return _refuse("a number", value)
        try:
            return float(value)
        except ValueError:
            return _refuse("a number", value)
    if kind == "dict":
        value = json.loads(value) if isinstance(value, str) else value
        if not isinstance(value, dict):
            raise TypeError(f"expected a JSON object, got {value!r}")
        return value
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {value!r}")
    return value


def _refuse(expected: str, value):
    raise TypeError(f"expected {expected}, got {value!r}")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per TrainConfig field (defaults left unset so presets can fill them)."""
    group = parser.add_argument_group("training settings (TrainConfig)")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if callable(f.default_factory) else f.default
        help_text = f"{f.metadata['help']} (default: {json.dumps(default)})"
        if f.type in ("bool", bool):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        else:
            group.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The TrainConfig fields given on the command line (as raw strings/bools)."""
    return {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}


def field_help() -> dict[str, str]:
    """Help text of every field, for forms."""
    return {f.name: f.metadata["help"] for f in fields(TrainConfig)}


def field_groups() -> dict[str, list[str]]:
    """{group title: field names in declaration order}, groups in GROUPS order; fields without a group
    (dataset, model: the form shows them on their own) are left out."""
    groups: dict[str, list[str]] = {title: [] for title in GROUPS}
    for f in fields(TrainConfig):
        if "group" in f.metadata:
            groups[f.metadata["group"]].append(f.name)
    return groups


def field_bounds(name: str) -> tuple[float | None, float | None]:
    """(low, high) bounds of a numeric field, for form widgets."""
    meta = {f.name: f.metadata for f in fields(TrainConfig)}[name]
    return meta.get("low"), meta.get("high")
