"""What an experiment varies: a grid of values or a search space over TrainConfig fields and model arguments.

`ExperimentSpec` is validated as a whole before anything is created: every field must be a TrainConfig field or
`model.ARG`, every value must make a valid TrainConfig on top of the base, and the number of trials is bounded.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field, fields

from core.training.config import ConfigError, TrainConfig

MAX_TRIALS = 200
MAX_VALUES = 50  # values of one grid field
SAMPLERS = ("grid", "random", "tpe")
MODEL_PREFIX = "model."
REPEAT_FIELDS = ("seed", "fold")  # the repeat axis: seeds, or folds when the base cross-validates
CONFIG_FIELDS = {f.name: f for f in fields(TrainConfig)}
NUMERIC = ("int", "float")
NOT_VARIED = ("dataset", "model_kwargs", "folds", "device", "threads", "monitor_test")


class ExperimentError(ValueError):
    """A bad experiment: the one-line message names the field."""


def _field_kind(name: str) -> str:
    f = CONFIG_FIELDS[name]
    return f.type if isinstance(f.type, str) else f.type.__name__


def check_field(name: str) -> str:
    """`name` if it may be varied: a TrainConfig field (not the dataset or hardware) or model.ARG."""
    if not isinstance(name, str) or not name:
        raise ExperimentError(f"{name!r}: give a TrainConfig field or model.ARG")
    if name.startswith(MODEL_PREFIX):
        arg = name[len(MODEL_PREFIX):]
        if not arg.isidentifier():
            raise ExperimentError(f"{name}: a model argument must be a Python name, e.g. model.dropout")
        return name
    if name not in CONFIG_FIELDS:
        raise ExperimentError(f"{name}: not a TrainConfig field (nor model.ARG)")
    if name in NOT_VARIED:
        raise ExperimentError(f"{name}: cannot be varied within one experiment")
    return name


def _parse_value(text: str):
    """A model argument value from the command line: JSON when it parses (numbers, true, lists), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_grid(text: str) -> tuple[str, list]:
    """`FIELD=V1,V2,...` as (field, [values]); values stay text for TrainConfig fields (validated later)."""
    name, sep, values = str(text).partition("=")
    name = name.strip()
    if not sep or not values.strip():
        raise ExperimentError(f"{name or text!r}: write a grid as FIELD=V1,V2,...")
    check_field(name)
    items = [v.strip() for v in values.split(",")]
    if any(not v for v in items):
        raise ExperimentError(f"{name}: empty value in {values!r}")
    if name.startswith(MODEL_PREFIX):
        return name, [_parse_value(v) for v in items]
    return name, items


def parse_space(text: str) -> tuple[str, tuple[float, float, bool]]:
    """`FIELD=LOW:HIGH[:log]` as (field, (low, high, log))."""
    name, sep, rest = str(text).partition("=")
    name = name.strip()
    parts = rest.split(":") if sep else []
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].strip() != "log"):
        raise ExperimentError(f"{name or text!r}: write a range as FIELD=LOW:HIGH or FIELD=LOW:HIGH:log")
    check_field(name)
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise ExperimentError(f"{name}: LOW and HIGH must be numbers, got {parts[0]!r} and {parts[1]!r}") from None
    return name, (low, high, len(parts) == 3)


def _json_scalar(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


@dataclass
class ExperimentSpec:
    """One experiment: a base TrainConfig (dict, preset applied) and what varies around it."""

    name: str
    dataset: str
    base: dict
    grid: dict[str, list] = field(default_factory=dict)
    repeats: int = 1
    sampler: str = "grid"
    trials: int | None = None
    space: dict[str, tuple[float, float, bool]] = field(default_factory=dict)
    prune: bool = False
    storage: str | None = None
    title: str = ""
    points: list[dict] = field(default_factory=list)  # explicit configurations, crossed with the grid's axes

    # ---- the trials -----------------------------------------------------------------------------
    def repeat_field(self) -> str:
        """The repeat axis: `fold` when the base cross-validates, else `seed`."""
        return "fold" if int(self.base.get("folds", 1)) > 1 else "seed"

    def axes(self) -> dict[str, list]:
        """The grid's axes, the repeat axis last (absent for one repeat)."""
        axes = {k: list(v) for k, v in self.grid.items()}
        if self.repeats > 1:
            axes[self.repeat_field()] = list(range(self.repeats))
        return axes

    def grid_points(self) -> list[dict]:
        """Every explicit point (or none) crossed with every combination of the grid's values."""
        axes = self.axes()
        return [{**point, **dict(zip(axes, combo, strict=True))}
                for point in (self.points or [{}]) for combo in itertools.product(*axes.values())]

    def varied(self) -> dict[str, list]:
        """Every field a grid varies with all its values: the explicit points' fields, then the axes."""
        values: dict[str, list] = {}
        for point in self.points:
            for name, value in point.items():
                values.setdefault(name, [])
                if value not in values[name]:
                    values[name].append(value)
        return {**values, **self.axes()}

    def n_trials(self) -> int:
        """How many trials (runs) the experiment makes."""
        if self.sampler == "grid":
            return max(1, len(self.points)) * math.prod(len(v) for v in self.axes().values())
        return int(self.trials or 0)

    def trial_config(self, params: dict) -> TrainConfig:
        """The validated TrainConfig of one trial: the base with `params` (FIELD or model.ARG) applied."""
        values = dict(self.base, dataset=self.dataset)
        values["model_kwargs"] = dict(values.get("model_kwargs") or {})
        for key, value in params.items():
            if key.startswith(MODEL_PREFIX):
                values["model_kwargs"][key[len(MODEL_PREFIX):]] = value
            else:
                values[key] = value
        return TrainConfig.from_dict(values)

    def base_value(self, name: str):
        """The base config's value of a varied field (None for a model argument it does not set)."""
        if name.startswith(MODEL_PREFIX):
            return (self.base.get("model_kwargs") or {}).get(name[len(MODEL_PREFIX):])
        return self.base.get(name, getattr(TrainConfig, name, None))

    # ---- validation -----------------------------------------------------------------------------
    def validate(self) -> ExperimentSpec:
        """Check everything; normalise grid values to their field's type. Raises ExperimentError naming the field."""
        from core.store.runs import RunNameError, validate_run_name

        try:
            validate_run_name(self.name)
        except RunNameError as err:
            raise ExperimentError(f"name: {err}") from None
        if len(self.name) > 100:
            raise ExperimentError("name: at most 100 characters (trial runs add -tNNN)")
        try:
            base = TrainConfig.from_dict({**self.base, "dataset": self.dataset})
        except ConfigError as err:
            raise ExperimentError(f"base: {err}") from None
        self.base = base.to_dict()
        if base.val_fraction == 0 and base.folds <= 1:
            raise ExperimentError("val_fraction: trials are compared on validation accuracy; set it above 0")
        if self.sampler not in SAMPLERS:
            raise ExperimentError(f"sampler: must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or not 1 <= self.repeats <= 20:
            raise ExperimentError(f"repeats: a whole number from 1 to 20, got {self.repeats!r}")
        if self.repeat_field() == "fold" and self.repeats > base.folds:
            raise ExperimentError(f"repeats: at most folds ({base.folds}) when the base cross-validates")
        if self.sampler == "grid":
            self._validate_grid()
        else:
            self._validate_search()
        if self.storage is not None and not str(self.storage).startswith(("postgresql+psycopg://", "sqlite:///")):
            raise ExperimentError("storage: give postgresql+psycopg://USER@HOST/DB (or sqlite:///FILE), "
                                  "or leave it out for the journal file")
        return self

    def _validate_grid(self) -> None:
        if self.space:
            raise ExperimentError("space: a grid takes --grid values; ranges need --sampler random or tpe")
        if self.trials:
            raise ExperimentError("trials: a grid runs every combination; --trials is for random or tpe")
        if not self.grid and not self.points and self.repeats == 1:
            raise ExperimentError("grid: give at least one FIELD=V1,V2 (or --repeats above 1)")
        if not isinstance(self.points, list) or len(self.points) > MAX_TRIALS:
            raise ExperimentError(f"points: a list of at most {MAX_TRIALS} configurations")
        points = []
        for point in self.points:
            if not isinstance(point, dict):
                raise ExperimentError(f"points: each is a FIELD: value mapping, got {point!r}")
            points.append({check_field(k): self._checked_value(k, v) for k, v in point.items()})
            if set(point) & set(self.grid):
                raise ExperimentError(f"{sorted(set(point) & set(self.grid))[0]}: both in a point and the grid")
        self.points = points
        normalised = {}
        for name, values in self.grid.items():
            check_field(name)
            if name in REPEAT_FIELDS and self.repeats > 1 and name == self.repeat_field():
                raise ExperimentError(f"{name}: already the repeat axis (--repeats)")
            if not isinstance(values, list) or not values or len(values) > MAX_VALUES:
                raise ExperimentError(f"{name}: give 1 to {MAX_VALUES} values")
            normalised[name] = [self._checked_value(name, v) for v in values]
            if len(set(map(json.dumps, normalised[name]))) != len(values):
                raise ExperimentError(f"{name}: a value is repeated")
        self.grid = normalised
        if self.n_trials() > MAX_TRIALS:
            raise ExperimentError(f"grid: {self.n_trials()} trials; at most {MAX_TRIALS}")

    def _checked_value(self, name: str, value):
        """`value` converted to the field's type and checked by TrainConfig's own validation (and the model build)."""
        if not _json_scalar(value):
            raise ExperimentError(f"{name}: values must be numbers, true/false or text, got {value!r}")
        try:
            config = self.trial_config({name: value})
        except ConfigError as err:
            raise ExperimentError(f"{name}={value}: {err}") from None
        if name.startswith(MODEL_PREFIX) or name == "model":
            from core.store.launcher import model_kwargs_problems

            problems = model_kwargs_problems(config)
            if problems:
                raise ExperimentError(f"{name}={value}: {problems[0]}")
            return value
        return getattr(config, name)

    def _validate_search(self) -> None:
        if self.grid or self.points:
            raise ExperimentError("grid: a random or tpe search takes --space ranges, not --grid values")
        if self.repeats != 1:
            raise ExperimentError("repeats: seeds as an axis are for grids; a search samples the seed it is given")
        if not self.space:
            raise ExperimentError("space: give at least one FIELD=LOW:HIGH[:log]")
        trials = self.trials
        if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
            raise ExperimentError(f"trials: a whole number from 1 to {MAX_TRIALS}, got {trials!r}")
        normalised = {}
        for name, bounds in self.space.items():
            check_field(name)
            if name.startswith(MODEL_PREFIX):
                raise ExperimentError(f"{name}: search ranges take TrainConfig fields; vary model arguments "
                                      "with a grid")
            if _field_kind(name) not in NUMERIC:
                raise ExperimentError(f"{name}: a range needs a numeric field")
            try:
                low, high, log = float(bounds[0]), float(bounds[1]), bool(bounds[2])
            except (TypeError, ValueError, IndexError):
                raise ExperimentError(f"{name}: a range is (LOW, HIGH, LOG)") from None
            if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
                raise ExperimentError(f"{name}: LOW must be below HIGH, got {low:g}:{high:g}")
            if log and low <= 0:
                raise ExperimentError(f"{name}: a log range needs LOW above 0, got {low:g}")
            if _field_kind(name) == "int" and not (low.is_integer() and high.is_integer()):
                raise ExperimentError(f"{name}: a whole-number field needs whole LOW and HIGH")
            for end in (low, high):
                self._checked_value(name, int(end) if _field_kind(name) == "int" else end)
            normalised[name] = (low, high, log)
        self.space = normalised

    # ---- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
        data["space"] = {k: list(v) for k, v in self.space.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ExperimentSpec:
        known = {f.name for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            raise ExperimentError(f"{unknown[0]}: not an experiment setting")
        values = dict(data)
        values["space"] = {k: tuple(v) for k, v in (data.get("space") or {}).items()}
        values["grid"] = {k: list(v) for k, v in (data.get("grid") or {}).items()}
        return cls(**values)
