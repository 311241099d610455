"""Experiments: parsing and validation of grids and spaces, effect statistics, the pruned state, a grid via the CLI."""

import json
import math
import statistics
import time

import pytest
from scipy import stats

from core import sweep
from core.experiments import report
from core.experiments import store as experiment_store
from core.experiments.spec import ExperimentError, ExperimentSpec, parse_grid, parse_space
from core.store import runs
from tests.conftest import TINY_SWEEP_BASE, tiny_config

BASE = tiny_config().to_dict()


def spec(**kw):
    return ExperimentSpec(**{"name": "e", "dataset": "mnist", "base": dict(BASE), **kw})


# ---- parsing ---------------------------------------------------------------------------------------
def test_grids_and_spaces_parse():
    assert parse_grid("lr=0.1, 0.01") == ("lr", ["0.1", "0.01"])
    assert parse_grid("model.dropout=0.1,0.5") == ("model.dropout", [0.1, 0.5])
    assert parse_space("lr=1e-4:1e-1:log") == ("lr", (1e-4, 1e-1, True))
    assert parse_space("weight_decay=0:0.01") == ("weight_decay", (0.0, 0.01, False))
    checked = spec(grid=dict([parse_grid("lr=0.1,0.01"), parse_grid("hflip=true,false")]), repeats=3).validate()
    assert checked.grid == {"lr": [0.1, 0.01], "hflip": [True, False]} and checked.n_trials() == 12
    assert {"lr": 0.01, "hflip": False, "seed": 2} in checked.grid_points()


@pytest.mark.parametrize("text, field", [
    ("lr", "lr"), ("lr=", "lr"), ("nosuch=1,2", "nosuch"), ("dataset=mnist", "dataset"), ("model.=1", "model."),
    ("lr=0.1,,0.2", "lr")])
def test_bad_grid_text_is_refused_naming_the_field(text, field):
    with pytest.raises(ExperimentError, match=f"^'?{field}"):
        parse_grid(text)


@pytest.mark.parametrize("text, field", [("lr=1:2:ln", "lr"), ("lr=a:b", "lr"), ("epochs", "epochs"),
                                         ("colour=1:2", "colour")])
def test_bad_space_text_is_refused_naming_the_field(text, field):
    with pytest.raises(ExperimentError, match=f"^'?{field}"):
        parse_space(text)


@pytest.mark.parametrize("kw, field", [
    ({"grid": {"lr": ["0", "0.1"]}}, "lr=0"),  # TrainConfig's own bound: lr > 0
    ({"grid": {"epochs": ["1.5"]}}, "epochs=1.5"),
    ({"grid": {"optimizer": ["adam", "rmsprop"]}}, "optimizer=rmsprop"),
    ({"grid": {"model.dropout": [0.1]}}, "model.dropout=0.1"),  # cnn2 takes no dropout
    ({"grid": {"lr": ["0.1", "0.1"]}}, "lr"),
    ({"grid": {"seed": [0, 1]}, "repeats": 2}, "seed"),
    ({"grid": {"batch_size": [str(b) for b in range(1, 21)], "lr": [str(i / 10) for i in range(1, 12)]}}, "grid"),
    ({"sampler": "random", "trials": 5, "space": {"lr": (0.1, 0.01, False)}}, "lr"),
    ({"sampler": "random", "trials": 5, "space": {"lr": (0.0, 0.1, True)}}, "lr"),
    ({"sampler": "random", "trials": 5, "space": {"optimizer": (0.0, 1.0, False)}}, "optimizer"),
    ({"sampler": "random", "trials": 5, "space": {"epochs": (1.5, 3.0, False)}}, "epochs"),
    ({"sampler": "tpe", "trials": 500, "space": {"lr": (0.01, 0.1, True)}}, "trials"),
    ({"grid": {"lr": ["0.1"]}, "storage": "mysql://x"}, "storage"),
    ({"grid": {"lr": ["0.1"]}, "trials": 3}, "trials"),
    ({"sampler": "random", "trials": 3, "space": {"lr": (0.01, 0.1, True)}, "repeats": 2}, "repeats"),
    ({"name": "../up", "grid": {"lr": ["0.1"]}}, "name"),
    ({"base": {**BASE, "val_fraction": 0.0}, "grid": {"lr": ["0.1"]}}, "val_fraction"),
])
def test_bad_experiments_are_refused_naming_the_field(kw, field):
    with pytest.raises(ExperimentError) as err:
        spec(**kw).validate()
    assert str(err.value).startswith(field) and "\n" not in str(err.value)


def test_repeats_become_folds_when_the_base_cross_validates():
    checked = spec(base={**BASE, "folds": 3}, grid={"lr": ["0.1", "0.01"]}, repeats=3).validate()
    assert checked.repeat_field() == "fold" and {p["fold"] for p in checked.grid_points()} == {0, 1, 2}
    assert checked.trial_config(checked.grid_points()[-1]).fold == 2


def test_spec_round_trips_through_a_dict():
    checked = spec(sampler="tpe", trials=4, space={"lr": (1e-3, 1e-1, True)}).validate()
    assert ExperimentSpec.from_dict(json.loads(json.dumps(checked.to_dict()))) == checked


def test_a_bad_command_line_creates_nothing(experiments, capsys):
    code = sweep.main(["--name", "bad", *TINY_SWEEP_BASE, "--grid", "lr=0.1,-1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "lr=-1" in err
    assert not experiments.exists() or not any(experiments.iterdir())


# ---- statistics ------------------------------------------------------------------------------------
def test_welch_interval_matches_the_hand_computation():
    a, b = [0.92, 0.93, 0.95], [0.90, 0.91]
    diff, low, high = report.welch_interval(a, b)
    va, vb = statistics.variance(a) / 3, statistics.variance(b) / 2  # s^2/n
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 1)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert diff == pytest.approx(0.9333333 - 0.905, abs=1e-6)
    assert (low, high) == pytest.approx((diff - half, diff + half))
    assert report.welch_interval([0.9], [0.8, 0.85])[1:] == (None, None)


def test_effects_per_value_against_the_base_value():
    checked = spec(grid={"hflip": ["true", "false"]}, repeats=2).validate()  # the base has hflip off
    accs = {(True, 0): 0.91, (True, 1): 0.93, (False, 0): 0.90, (False, 1): 0.90}
    rows = [{"number": i, "params": {"hflip": h, "seed": s}, "state": "complete", "val_acc": v}
            for i, ((h, s), v) in enumerate(accs.items())]
    rows.append({"number": 9, "params": {"hflip": True, "seed": 0}, "state": "pruned", "val_acc": 0.1})
    found = report.effects(checked, rows)
    on, off = found["hflip"]
    assert off["reference"] and off["diff"] == 0 and off["mean"] == pytest.approx(0.90) and off["std"] == 0
    assert on["n"] == 2 and on["mean"] == pytest.approx(0.92) and on["std"] == pytest.approx(math.sqrt(2e-4))
    half = stats.t.ppf(0.975, 1) * math.sqrt(2e-4 / 2)  # Welch df = 1 when the reference has no spread
    assert on["diff"] == pytest.approx(0.02) and on["ci_low"] == pytest.approx(0.02 - half)
    assert on["ci_high"] == pytest.approx(0.02 + half)
    [sentence] = report.sentences(checked, found)
    assert sentence == (f"hflip on: +2.0 +- {100 * half:.1f} points (95% interval {100 * (0.02 - half):+.1f} to "
                        f"{100 * (0.02 + half):+.1f}, within seed-to-seed noise) over 2 trials each (2 seeds)")


def test_effect_sentences_read_as_a_change_over_what_the_means_were_taken_on():
    ablation = spec(grid={"vflip": ["false", "true"], "label_smoothing": ["0", "0.1"]}, repeats=3).validate()
    rows = [{"number": i, "params": point, "state": "complete", "val_acc": 0.80 + 0.05 * point["vflip"] + 0.001 * i}
            for i, point in enumerate(ablation.grid_points())]
    lines = report.sentences(ablation, report.effects(ablation, rows))
    assert lines[0].startswith("vflip on: +5.") and "beyond seed-to-seed noise" in lines[0]
    assert lines[0].endswith("over 6 trials each (3 seeds x 2 settings of the other factors)")
    assert lines[1].startswith("label smoothing 0.1 instead of 0: ") and "within seed-to-seed noise" in lines[1]
    partial = report.sentences(ablation, report.effects(ablation, rows[:-1]))  # one trial still to come
    assert partial[0].endswith("over 5 and 6 trials")
    single = spec(grid={"lr": ["0.1", "0.01"]}).validate()
    rows = [{"number": i, "params": p, "state": "complete", "val_acc": 0.9 - i / 10}
            for i, p in enumerate(single.grid_points())]
    assert report.sentences(single, report.effects(single, rows)) == [
        "lr 0.01 instead of 0.1: -10.0 points (too few trials for an interval: add repeats) over 1 trial each"]


def test_the_best_trial_is_chosen_by_validation_accuracy_never_by_test_accuracy():
    rows = [{"number": 0, "params": {}, "state": "complete", "val_acc": 0.90, "test_acc": 0.99},
            {"number": 1, "params": {}, "state": "complete", "val_acc": 0.93, "test_acc": 0.80},
            {"number": 2, "params": {}, "state": "pruned", "val_acc": 0.95, "test_acc": 0.99}]
    assert report.best_trial(rows)["number"] == 1  # a pruned trial's partial accuracy does not count either


# ---- the pruned state ------------------------------------------------------------------------------
def test_pruned_is_a_finished_state_with_its_history_kept(tmp_path):
    writer = runs.RunWriter.create(tmp_path / "p", tiny_config().to_dict(), state="running")
    writer.log({"type": "epoch", "epoch": 1, "val_acc": 0.5})
    writer.set_status("pruned", hint="pruned by the experiment")
    info = runs.read_run(tmp_path / "p")
    assert info.state == "pruned" and "pruned" not in runs.ACTIVE_STATES and info.status["finished"]
    assert runs.read_metrics(tmp_path / "p")[0][0]["val_acc"] == 0.5
    assert runs.effective_status(info.status)["state"] == "pruned"


# ---- end to end --------------------------------------------------------------------------------------
def test_a_small_grid_runs_end_to_end_through_the_cli(experiments, store, capsys):
    code = sweep.main(["--name", "g", *TINY_SWEEP_BASE, "--grid", "optimizer=adam,sgd", "--repeats", "2"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and out[-1] == str(experiments / "g")
    assert sorted(p.name for p in store.iterdir() if not p.name.startswith(".")) == [f"g-t00{i}" for i in range(4)]
    config = runs.read_json(store / "g-t003" / "config.json")
    assert config["experiment"] == {"name": "g", "trial": 3} and config["optimizer"] == "sgd" and config["seed"] == 1
    assert sweep.main(["--name", "g", "--report", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"trials", "effects", "best"} <= set(result)  # the shape (and more: counts, sentences, ...)
    assert all({"number", "run", "params", "state", "val_acc", "test_acc"} <= set(t) for t in result["trials"])
    assert all({"value", "mean", "std", "n"} <= set(e) for e in result["effects"]["optimizer"])
    assert result["counts"]["complete"] == 4 and len(result["trials"]) == 4
    for trial in result["trials"]:
        summary = runs.read_json(store / trial["run"] / "summary.json")
        assert trial["val_acc"] == summary["best_val_acc"] and trial["test_acc"] == summary["test_acc"]
    by_value = {e["value"]: e for e in result["effects"]["optimizer"]}
    adam = [t["val_acc"] for t in result["trials"] if t["params"]["optimizer"] == "adam"]
    assert by_value["adam"]["reference"] and by_value["adam"]["mean"] == pytest.approx(statistics.fmean(adam))
    assert result["best"]["val_acc"] == max(t["val_acc"] for t in result["trials"])
    assert result["base"] == {"optimizer": "adam"} and result["sentences"]
    assert experiment_store.list_experiments() == ["g"]
    code = sweep.main(["--name", "g", *TINY_SWEEP_BASE, "--grid", "lr=0.1,0.2"])
    assert code == 2 and "already exists" in capsys.readouterr().err


def test_a_tpe_search_reports_importances_and_confirm_top_queues_its_best_with_seeds(experiments, store, capsys):
    code = sweep.main(["--name", "s", *TINY_SWEEP_BASE, "--sampler", "tpe", "--trials", "4",
                       "--space", "lr=1e-4:1e-2:log", "--space", "batch_size=16:128"])
    assert code == 0
    result = report.report("s")
    assert result["counts"]["complete"] == 4 and result["effects"] == {}
    for trial in result["trials"]:
        assert 1e-4 <= trial["params"]["lr"] <= 1e-2 and isinstance(trial["params"]["batch_size"], int)
        config = runs.read_json(store / trial["run"] / "config.json")
        assert (config["lr"], config["batch_size"]) == (trial["params"]["lr"], trial["params"]["batch_size"])
    assert set(result["importances"]) == {"lr", "batch_size"}
    assert sum(result["importances"].values()) == pytest.approx(1.0)
    assert result["best"]["val_acc"] == max(t["val_acc"] for t in result["trials"])
    follow = report.confirm_top("s", k=2, seeds=2)
    top = sorted(result["trials"], key=lambda t: -t["val_acc"])[:2]
    spec = experiment_store.load_spec(follow)
    assert spec.n_trials() == 4 and spec.points == [t["params"] for t in top]
    assert {(p["lr"], p["seed"]) for p in spec.grid_points()} == {(t["params"]["lr"], s) for t in top for s in (0, 1)}
    assert report.report(follow)["counts"]["queued"] == 4 and report.report(follow)["state"] == "queued"
    estimate = report.estimate(spec)
    assert estimate["runs"] == 4 and estimate["seconds"] > 0


def test_a_trial_whose_worker_on_another_machine_went_silent_is_failed_and_queued_again(experiments, store):
    from core.experiments import worker

    experiment_store.create_experiment(spec(name="far", grid={"lr": ["0.1", "0.01"]}))
    opened = worker.open_study("far")
    checked, study = opened.spec, opened.study
    trial = worker.claim_trial(opened)
    trial.set_user_attr("worker_host", "another-machine")
    trial.set_user_attr("run", "far-t000")
    params = worker.suggest_params(checked, trial)
    runs.RunWriter.create(store / "far-t000", checked.trial_config(params).to_dict(), state="running")
    trial.set_user_attr("heartbeat", time.time() - 5)
    assert worker.recover_interrupted(opened) == [] and worker.claim_trial(opened).number == 1  # alive: left alone
    trial.set_user_attr("heartbeat", time.time() - worker.ORPHAN_AFTER_SECONDS - 5)
    assert worker.recover_interrupted(opened) == [0]
    assert worker.recover_interrupted(opened) == []  # recovered once
    rows = report.trial_rows(study)
    assert [(r["number"], r["state"]) for r in rows] == [(0, "failed"), (1, "running"), (2, "queued")]
    assert rows[2]["params"] == rows[0]["params"] == {"lr": 0.1}
    assert runs.read_run(store / "far-t000").status.get("interrupted")


def test_start_workers_is_bounded_by_the_training_slots_and_refuses_unknown_experiments(experiments, monkeypatch):
    from core.experiments.worker import start_workers

    monkeypatch.setenv("MNIST_STUDIO_MAX_CONCURRENT", "2")
    with pytest.raises(ValueError, match="workers: a whole number from 1 to 2"):
        start_workers("any", 3)
    with pytest.raises(FileNotFoundError):
        start_workers("nosuch", 1)
    assert not experiments.exists() or not any(experiments.iterdir())
