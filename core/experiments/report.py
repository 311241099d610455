"""What an experiment found: trials, counts, effects with 95% intervals, importances, the best trial.

Effects compare, for each varied field, the validation accuracy of its values with the base value's
(mean +- standard deviation over the trials with that value, difference with a Welch t interval).
Selection uses validation accuracy only; test accuracy is reported, never used to choose.
"""

from __future__ import annotations

import json
import math
import statistics

import optuna
from optuna.trial import TrialState
from scipy import stats

from core.experiments import store
from core.experiments.spec import MODEL_PREFIX, ExperimentSpec
from core.experiments.worker import open_study, trial_params
from core.models.cost import estimate_cost
from core.store import runs

COUNT_KEYS = ("complete", "running", "queued", "pruned", "failed", "stopped")
DEFAULT_IMAGES_PER_SECOND = 2000.0  # a small CNN on 2 CPU cores, when no run of the model was measured
TRIAL_OVERHEAD_SECONDS = 1.0
TRAIN_IMAGES = 60000
TEST_IMAGES = 10000
EVAL_SPEEDUP = 3.0  # a forward pass costs about a third of a training step (forward, backward, update) per image


def trial_state(frozen: optuna.trial.FrozenTrial) -> str:
    """complete | running | queued | pruned | failed | stopped (failed covers interrupted and diverged)."""
    if frozen.state == TrialState.COMPLETE:
        return "complete"
    if frozen.state == TrialState.PRUNED:
        return "pruned"
    if frozen.state == TrialState.RUNNING:
        return "running"
    if frozen.state == TrialState.WAITING:
        return "queued"
    return "stopped" if frozen.user_attrs.get("state") == "stopped" else "failed"


def trial_rows(study: optuna.Study) -> list[dict]:
    """One row per trial, in trial order."""
    rows = []
    for frozen in study.get_trials(deepcopy=False):
        val = frozen.value if frozen.state == TrialState.COMPLETE else frozen.user_attrs.get("val_acc")
        rows.append({"number": frozen.number, "run": frozen.user_attrs.get("run"), "params": trial_params(frozen),
                     "state": trial_state(frozen), "val_acc": val, "test_acc": frozen.user_attrs.get("test_acc"),
                     "error": frozen.user_attrs.get("error")})
    return rows


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float | None, float | None]:
    """(mean(a) - mean(b), low, high): Welch's t interval for the difference; None bounds when a group has < 2
    values or both have no spread."""
    diff = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return diff, None, None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return diff, diff - half, diff + half


def _key(value) -> str:
    return json.dumps(value, sort_keys=True)


def effects(spec: ExperimentSpec, rows: list[dict]) -> dict[str, list[dict]]:
    """For each varied grid field: per value, mean/std/n of validation accuracy over complete trials and the
    difference to the base value (the base config's value, else the field's first value) with a 95% interval."""
    if spec.sampler != "grid":
        return {}
    done = [r for r in rows if r["state"] == "complete" and r["val_acc"] is not None]
    result = {}
    for name, values in spec.varied().items():
        if len(values) < 2 or name == spec.repeat_field() and spec.repeats > 1:
            continue
        groups = {_key(v): [r["val_acc"] for r in done if _key(r["params"].get(name)) == _key(v)] for v in values}
        base = spec.base_value(name)
        reference = _key(base) if _key(base) in groups else _key(values[0])
        ref_accs = groups[reference]
        entries = []
        for value in values:
            accs = groups[_key(value)]
            entry = {"value": value, "mean": None, "std": None, "n": len(accs), "diff": None, "ci_low": None,
                     "ci_high": None, "reference": _key(value) == reference}
            if accs:
                entry["mean"] = statistics.fmean(accs)
                entry["std"] = statistics.stdev(accs) if len(accs) > 1 else 0.0
                if ref_accs:
                    entry["diff"], entry["ci_low"], entry["ci_high"] = welch_interval(accs, ref_accs)
            entries.append(entry)
        result[name] = entries
    return result


def _label(name: str) -> str:
    """A field as a learner reads it: 'model.batch_norm' -> 'batch norm', 'label_smoothing' -> 'label smoothing'."""
    return name.removeprefix(MODEL_PREFIX).replace("_", " ")


def change_text(name: str, value, reference) -> str:
    """'batch norm on', 'vflip off', 'lr 0.01 instead of 0.001': what a value changes from the reference value."""
    if isinstance(value, bool) and isinstance(reference, bool):
        return f"{_label(name)} {'on' if value else 'off'}"
    return f"{_label(name)} {value:g} instead of {reference:g}" if all(
        isinstance(v, float) for v in (value, reference)) else f"{_label(name)} {value} instead of {reference}"


def trials_text(spec: ExperimentSpec, name: str, n: int, n_reference: int) -> str:
    """'over 8 trials each (2 seeds x 4 settings of the other factors)': what the two means were taken over (while
    the experiment runs, only the counts: 'over 3 and 4 trials')."""
    if n != n_reference:
        return f"over {n} and {n_reference} trials"
    values = len(spec.varied()[name])
    each = f"over {n} trial{'s' if n != 1 else ''} each"
    if n * values != spec.n_trials():
        return each
    repeats = spec.repeats
    others = n // repeats
    unit = ("fold" if spec.repeat_field() == "fold" else "seed") + ("s" if repeats > 1 else "")
    parts = [f"{repeats} {unit}"] if repeats > 1 else []
    if others > 1:
        parts.append(f"{others} settings of the other factors")
    return each + (f" ({' x '.join(parts)})" if parts else "")


def sentences(spec: ExperimentSpec, found: dict[str, list[dict]]) -> list[str]:
    """The effects in words, in accuracy points (percentage points of validation accuracy), e.g. "batch norm on:
    +7.8 +- 3.0 points (95% interval +4.8 to +10.7, beyond seed-to-seed noise) over 8 trials each (2 seeds x 4
    settings of the other factors)"; +- is half the 95% interval."""
    lines = []
    noise = "fold-to-fold" if spec.repeat_field() == "fold" else "seed-to-seed"
    for name, entries in found.items():
        reference = next(e for e in entries if e["reference"])
        for e in entries:
            if e["reference"] or e["diff"] is None:
                continue
            text = f"{change_text(name, e['value'], reference['value'])}: {100 * e['diff']:+.1f}"
            if e["ci_low"] is not None:
                half = 100 * (e["ci_high"] - e["ci_low"]) / 2
                verdict = "beyond" if e["ci_low"] > 0 or e["ci_high"] < 0 else "within"
                text += (f" +- {half:.1f} points (95% interval {100 * e['ci_low']:+.1f} to {100 * e['ci_high']:+.1f}, "
                         f"{verdict} {noise} noise)")
            else:
                text += " points (too few trials for an interval: add repeats)"
            lines.append(f"{text} {trials_text(spec, name, e['n'], reference['n'])}")
    return lines


def importances(spec: ExperimentSpec, study: optuna.Study) -> dict[str, float]:
    """Optuna's parameter importances for a search (empty for grids or with fewer than two complete trials)."""
    if spec.sampler == "grid" or len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return {}
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (ValueError, RuntimeError):
        return {}


def best_trial(rows: list[dict]) -> dict:
    """The complete trial with the highest validation accuracy ({} when none finished)."""
    done = [r for r in rows if r["state"] == "complete" and r["val_acc"] is not None]
    return dict(max(done, key=lambda r: (r["val_acc"], -r["number"]))) if done else {}


def experiment_state(counts: dict, stop_requested: bool) -> str:
    """running (a trial runs) | stopped (a stop was asked) | finished (nothing queued) | queued (waits for a worker)."""
    if counts["running"]:
        return "running"
    if stop_requested:
        return "stopped"
    return "queued" if counts["queued"] else "finished"


def report(name: str) -> dict:
    """The whole report of experiment `name` (the `--report --json` object)."""
    opened = open_study(name)
    spec, study = opened.spec, opened.study
    rows = trial_rows(study)
    counts = {key: sum(r["state"] == key for r in rows) for key in COUNT_KEYS}
    found = effects(spec, rows)
    stopping = store.stop_requested(name)
    varied = [k for k in spec.varied() if k in found] if spec.sampler == "grid" else list(spec.space)
    return {"name": spec.name, "sampler": spec.sampler, "n_trials": spec.n_trials(), "trials": rows,
            "counts": counts, "effects": found, "sentences": sentences(spec, found),
            "importances": importances(spec, study), "best": best_trial(rows),
            "base": {k: spec.base_value(k) for k in varied}, "stop_requested": stopping,
            "state": experiment_state(counts, stopping)}


# ---- before starting, and after ------------------------------------------------------------------
def measured_speeds(dataset: str) -> tuple[dict[str, float], dict[str, tuple[float, dict]]]:
    """Median training speed (images/s over whole epochs) per model of the completed runs on `dataset`: this
    machine's runs, and the shipped runs with their model arguments. One read of the run store."""
    found: dict[tuple[str, str], list[float]] = {}
    shipped_kwargs: dict[str, dict] = {}
    for info in runs.list_runs(include_pretrained=True, dataset=dataset):
        if info.state != "completed" or info.model is None:
            continue
        events, _ = runs.read_metrics(info.path)
        speeds = [e["images_per_sec"] for e in events if e["type"] == "epoch" and e.get("images_per_sec")]
        found.setdefault((info.source, info.model), []).extend(speeds)
        if info.source == "pretrained":
            shipped_kwargs.setdefault(info.model, (info.config or {}).get("model_kwargs") or {})
    median = {key: statistics.median(v) for key, v in found.items() if v}
    user = {model: s for (source, model), s in median.items() if source != "pretrained"}
    shipped = {model: (s, shipped_kwargs[model]) for (source, model), s in median.items() if source == "pretrained"}
    return user, shipped


def _macs(model: str, kwargs: dict) -> int | None:
    try:
        return estimate_cost(model, **kwargs).macs or None
    except Exception:  # noqa: BLE001 - an estimate never fails: an unbuildable model was refused before this
        return None


def training_speed(model: str, kwargs: dict, measured: tuple[dict, dict]) -> tuple[float, bool]:
    """(images/s, measured?): this machine's runs of the model, else the shipped runs of it, else the shipped
    model whose multiply-adds per image are nearest, scaled by the ratio of multiply-adds (a first guess).
    `measured` is what measured_speeds returned."""
    user, shipped = measured
    if model in user:
        return user[model], True
    if model in shipped:
        return shipped[model][0], True
    macs = _macs(model, kwargs)
    references = []
    for ref_model, (ref_speed, ref_kwargs) in shipped.items():
        ref_macs = _macs(ref_model, ref_kwargs)
        if ref_macs:
            distance = abs(math.log(ref_macs / macs)) if macs else 0.0
            references.append((distance, ref_speed * ref_macs / (macs or ref_macs)))
    return (min(references)[1], False) if references else (DEFAULT_IMAGES_PER_SECOND, False)


def estimate(spec: ExperimentSpec) -> dict:
    """{runs, seconds, unmeasured}: the number of trials and a duration for one worker, from the training speed
    of each model (training images x epochs, plus validation every epoch and the test set at the end, which
    run forward only, about EVAL_SPEEDUP times faster per image), and the models whose speed is a guess."""
    seconds = 0.0
    points = spec.grid_points() if spec.sampler == "grid" else [{}] * spec.n_trials()
    speeds: dict[str, tuple[float, bool]] = {}
    measured = measured_speeds(spec.dataset)
    for point in points:
        config = spec.trial_config(point)
        key = json.dumps([config.model, config.model_kwargs], sort_keys=True)
        if key not in speeds:
            speeds[key] = training_speed(config.model, config.model_kwargs, measured)
        speed = speeds[key][0]
        val = TRAIN_IMAGES / config.folds if config.folds > 1 else TRAIN_IMAGES * config.val_fraction
        train = config.subset or TRAIN_IMAGES - val
        per_epoch = min(train, config.limit_batches * config.batch_size) if config.limit_batches else train
        evaluation = (config.epochs * val + TEST_IMAGES) / (speed * EVAL_SPEEDUP)
        seconds += config.epochs * per_epoch / speed + evaluation + TRIAL_OVERHEAD_SECONDS
    unmeasured = sorted({json.loads(k)[0] for k, (_, measured) in speeds.items() if not measured})
    return {"runs": len(points), "seconds": seconds, "unmeasured": unmeasured}


def confirm_top(name: str, k: int = 3, seeds: int = 3) -> str:
    """Queue a follow-up experiment: the top `k` trials of a search by validation accuracy, each with `seeds`
    seeds, as a grid over their parameter sets (explicit points); returns its name."""
    opened = open_study(name)
    spec, study = opened.spec, opened.study
    done = sorted((r for r in trial_rows(study) if r["state"] == "complete"), key=lambda r: -r["val_acc"])[:k]
    if not done:
        raise ValueError(f"{name}: no complete trial to confirm yet")
    points = [{k: v for k, v in row["params"].items() if k not in ("seed", "fold")} for row in done]
    new_name = f"{spec.name}-confirm"
    n = 1
    while (store.experiments_root() / new_name).exists():
        n += 1
        new_name = f"{spec.name}-confirm{n}"
    follow = ExperimentSpec(name=new_name, dataset=spec.dataset, base=spec.base, points=points, repeats=seeds,
                            storage=spec.storage, title=f"confirm the top {len(done)} of {spec.name}")
    store.create_experiment(follow)
    return new_name
