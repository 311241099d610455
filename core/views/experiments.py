"""What the Experiments page shows and reads, as pure functions over an experiment's report
(core.experiments.report.report) and the page's text fields.

Tables are lists of plain dicts (one per row). Accuracies in a report are fractions (0.9123); the tables
show them as fractions too (the page formats them as percentages) and differences in points.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import fields

from core.experiments.spec import MODEL_PREFIX, ExperimentError, ExperimentSpec, parse_grid, parse_space
from core.training.config import ConfigError, TrainConfig
from core.training.presets import get_preset

COUNT_STATES = ("complete", "running", "queued", "pruned", "failed", "stopped")
MAX_LINES = 20  # lines in one of the page's text fields (base settings, grid, ranges)
MAX_LINE_CHARS = 500


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def format_value(value) -> str:
    """A parameter value as a short label: 0.001 -> '0.001', True -> 'true', 'cnn2' -> 'cnn2'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def field_label(name: str) -> str:
    """'model.batch_norm' -> 'batch norm (model)', 'lr' -> 'lr'."""
    if name.startswith(MODEL_PREFIX):
        return f"{name[len(MODEL_PREFIX):].replace('_', ' ')} (model)"
    return name.replace("_", " ")


# ---- reading the page's fields --------------------------------------------------------------------

def _lines(text: str, what: str) -> list[str]:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip() and not line.strip().startswith("#")]
    if len(lines) > MAX_LINES:
        raise ExperimentError(f"{what}: at most {MAX_LINES} lines, got {len(lines)}")
    for line in lines:
        if len(line) > MAX_LINE_CHARS:
            raise ExperimentError(f"{what}: a line is longer than {MAX_LINE_CHARS} characters")
    return lines


def parse_settings(text: str) -> dict:
    """Base settings typed as `FIELD=VALUE` lines (model arguments as `model.ARG=VALUE`) as a TrainConfig dict
    fragment; the values stay text for TrainConfig.from_dict to convert and check (model arguments are JSON)."""
    settings: dict = {}
    for line in _lines(text, "base settings"):
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ExperimentError(f"base settings: write FIELD=VALUE, got {line!r}")
        if name.startswith(MODEL_PREFIX):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = value
            settings.setdefault("model_kwargs", {})[name[len(MODEL_PREFIX):]] = parsed
        else:
            settings[name] = value
    return settings


def base_config(dataset: str, preset: str | None, overrides: dict, start: dict | None = None) -> dict:
    """The base TrainConfig (as a dict) of an experiment: `start` (a whole config, e.g. the Train page's form)
    or else `preset` for `dataset`, with `overrides` (parse_settings) on top; model arguments in `overrides` add
    to the start config's. Raises ExperimentError with the config's own messages."""
    try:
        if start is None:
            return get_preset(preset).config(dataset, **overrides).to_dict()
        kwargs = {**(start.get("model_kwargs") or {}), **overrides.get("model_kwargs", {})}
        return TrainConfig.from_dict({**start, **overrides, "model_kwargs": kwargs, "dataset": dataset}).to_dict()
    except (ValueError, TypeError) as err:  # ConfigError is a ValueError; so is an unknown preset
        messages = err.messages if isinstance(err, ConfigError) else [str(err)]
        raise ExperimentError(f"base settings: {'; '.join(messages)}") from None


def config_lines(config: dict) -> list[str]:
    """What a whole config holds, for a reader: the model with its arguments, then every field that differs from
    TrainConfig's default ('epochs = 3'), in the dataclass's order."""
    lines = [f"model = {config.get('model')}"]
    lines += [f"model.{k} = {format_value(v)}" for k, v in (config.get("model_kwargs") or {}).items()]
    for f in fields(TrainConfig):
        if f.name in ("dataset", "model", "model_kwargs") or f.name not in config:
            continue
        default = f.default_factory() if callable(f.default_factory) else f.default
        if config[f.name] != default:
            lines.append(f"{f.name} = {format_value(config[f.name])}")
    return lines


def build_spec(name: str, dataset: str, preset: str | None, settings: str = "", grid: str = "", space: str = "",
               sampler: str = "grid", trials: int | None = None, repeats: int = 1, prune: bool = False,
               title: str = "", start: dict | None = None) -> ExperimentSpec:
    """The validated spec of the page's form: a preset for `dataset` (or `start`, a whole config such as the Train
    page's form) with `settings` on top as the base, `grid` lines FIELD=V1,V2 (a grid) or `space` lines
    FIELD=LOW:HIGH[:log] (a random or TPE search). Raises ExperimentError with one line naming the field."""
    base = base_config(dataset, preset, parse_settings(settings), start)
    spec = ExperimentSpec(name=str(name or "").strip(), dataset=dataset, base=base,
                          grid=dict(parse_grid(line) for line in _lines(grid, "grid")),
                          repeats=repeats, sampler=sampler, trials=trials if sampler != "grid" else None,
                          space=dict(parse_space(line) for line in _lines(space, "ranges")) if sampler != "grid"
                          else {}, prune=prune, title=title)
    return spec.validate()


# ---- the live view and the results ---------------------------------------------------------------

def count_text(counts: dict) -> str:
    """'3 done · 1 running · 12 queued · 2 pruned' (failed and stopped only when there are any)."""
    names = {"complete": "done"}
    parts = []
    for state in COUNT_STATES:
        n = int(counts.get(state) or 0)
        if n or state in ("complete", "running", "queued", "pruned"):
            parts.append(f"{n} {names.get(state, state)}")
    return " · ".join(parts)


def finished_fraction(counts: dict) -> float:
    """Share of the trials that have ended (done, pruned, failed or stopped), 0..1."""
    total = sum(int(counts.get(s) or 0) for s in COUNT_STATES)
    ended = sum(int(counts.get(s) or 0) for s in ("complete", "pruned", "failed", "stopped"))
    return ended / total if total else 0.0


def param_names(report: dict) -> list[str]:
    """The varied fields, in the order they first appear in the trials."""
    names: list[str] = []
    for trial in report.get("trials") or []:
        for key in trial.get("params") or {}:
            if key not in names:
                names.append(key)
    return names


def leaderboard(report: dict, limit: int | None = None) -> list[dict]:
    """Trials ranked by validation accuracy (trials without one last, by number); test accuracy for
    information only: it never decides the rank."""
    trials = list(report.get("trials") or [])
    trials.sort(key=lambda t: (_number(t.get("val_acc")) is None, -(_number(t.get("val_acc")) or 0.0),
                               t.get("number", 0)))
    names = param_names(report)
    rows = []
    for rank, trial in enumerate(trials[:limit] if limit else trials, start=1):
        params = trial.get("params") or {}
        rows.append({"rank": rank, "trial": trial.get("number"), "run": trial.get("run"), "state": trial.get("state"),
                     "val acc": _number(trial.get("val_acc")), "test acc": _number(trial.get("test_acc")),
                     **{field_label(n): format_value(params[n]) if n in params else None for n in names}})
    return rows


def effect_rows(report: dict) -> list[dict]:
    """One row per value of each varied field: mean +- std of validation accuracy over its runs, and the
    difference to the base value with its 95% interval, in points (the base value's row says "base")."""
    rows = []
    for name, values in (report.get("effects") or {}).items():
        for item in values:
            diff, low, high = (_number(item.get(k)) for k in ("diff", "ci_low", "ci_high"))
            if item.get("reference"):
                interval = "base"
            elif low is not None and high is not None:
                interval = f"{_points(low):+.2f} to {_points(high):+.2f}"
            else:
                interval = ""
            rows.append({"field": field_label(name), "value": format_value(item.get("value")), "runs": item.get("n"),
                         "mean val acc": _number(item.get("mean")),
                         "std (points)": _points(item.get("std")),
                         "vs base (points)": None if item.get("reference") else _points(diff),
                         "95% interval (points)": interval})
    return rows


def _points(fraction) -> float | None:
    value = _number(fraction)
    return None if value is None else round(100 * value, 3)


def importance_rows(report: dict) -> list[dict]:
    """Optuna's parameter importances, largest first (searches only; empty otherwise)."""
    items = [(k, _number(v)) for k, v in (report.get("importances") or {}).items()]
    return [{"field": field_label(k), "importance": v} for k, v in sorted(items, key=lambda kv: -(kv[1] or 0))]


def parallel_dimensions(report: dict) -> tuple[list[dict], list[float]]:
    """(dimensions, colour values) for a plotly parallel-coordinates plot of the trials with a validation
    accuracy: one axis per varied field (text and true/false values as ticks), then validation accuracy."""
    trials = [t for t in report.get("trials") or [] if _number(t.get("val_acc")) is not None]
    dims = []
    for name in param_names(report):
        values = [(t.get("params") or {}).get(name) for t in trials]
        if all(_number(v) is not None for v in values):
            dims.append({"label": field_label(name), "values": [float(v) for v in values]})
        else:
            ticks = sorted({format_value(v) for v in values})
            dims.append({"label": field_label(name), "values": [ticks.index(format_value(v)) for v in values],
                         "tickvals": list(range(len(ticks))), "ticktext": ticks})
    accs = [100 * float(t["val_acc"]) for t in trials]
    dims.append({"label": "val acc %", "values": accs})
    return dims, accs


def best_text(report: dict) -> str:
    """The best trial in one line, chosen by validation accuracy."""
    best = report.get("best") or {}
    val = _number(best.get("val_acc"))
    if val is None:
        return "No trial has a validation accuracy yet."
    params = ", ".join(f"{field_label(k)} = {format_value(v)}" for k, v in (best.get("params") or {}).items())
    test = _number(best.get("test_acc"))
    test_text = f"; test {test:.2%}, for information" if test is not None else ""
    return f"Best: trial {best.get('number')} ({best.get('run')}): {params or 'the base'}, " \
           f"validation {val:.2%}{test_text}."


def trials_csv(report: dict) -> str:
    """Every trial as CSV: number, run, state, accuracies, then one column per varied field."""
    names = param_names(report)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["trial", "run", "state", "val_acc", "test_acc", *names])
    for trial in sorted(report.get("trials") or [], key=lambda t: t.get("number", 0)):
        params = trial.get("params") or {}
        writer.writerow([trial.get("number"), trial.get("run"), trial.get("state"), trial.get("val_acc"),
                         trial.get("test_acc"), *[format_value(params[n]) if n in params else "" for n in names]])
    return out.getvalue()


def runs_for_compare(report: dict, numbers: list[int]) -> list[str]:
    """The run names of the chosen trials (in the given order), skipping trials that have no run."""
    by_number = {t.get("number"): t.get("run") for t in report.get("trials") or []}
    return [by_number[n] for n in numbers if by_number.get(n)]
