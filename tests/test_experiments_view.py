"""core.views.experiments: the page's fields read into a spec, and a report turned into tables, by hand."""

import csv
import io

import pytest

from core.experiments.spec import ExperimentError
from core.views import experiments as xv

REPORT = {
    "trials": [
        {"number": 0, "run": "e-t000", "params": {"model.batch_norm": False, "seed": 0}, "state": "complete",
         "val_acc": 0.80, "test_acc": 0.79},
        {"number": 1, "run": "e-t001", "params": {"model.batch_norm": True, "seed": 0}, "state": "complete",
         "val_acc": 0.86, "test_acc": 0.70},
        {"number": 2, "run": "e-t002", "params": {"model.batch_norm": False, "seed": 1}, "state": "pruned",
         "val_acc": 0.60, "test_acc": None},
        {"number": 3, "run": None, "params": {"model.batch_norm": True, "seed": 1}, "state": "queued",
         "val_acc": None, "test_acc": None},
    ],
    "effects": {"model.batch_norm": [
        {"value": False, "mean": 0.80, "std": 0.0, "n": 1, "diff": 0.0, "ci_low": None, "ci_high": None,
         "reference": True},
        {"value": True, "mean": 0.86, "std": 0.01, "n": 2, "diff": 0.06, "ci_low": 0.04, "ci_high": 0.08,
         "reference": False},
        {"value": None, "mean": 0.5, "std": 0.0, "n": 1, "diff": -0.3, "ci_low": None, "ci_high": None}]},
    "counts": {"complete": 2, "running": 0, "queued": 1, "pruned": 1, "failed": 0, "stopped": 0},
    "importances": {"lr": 0.25, "batch_size": 0.75},
    "best": {"number": 1, "run": "e-t001", "params": {"model.batch_norm": True, "seed": 0}, "val_acc": 0.86,
             "test_acc": 0.70},
}


def test_settings_lines_become_config_values_and_model_arguments():
    assert xv.parse_settings("epochs=3\n# a comment\n\nmodel.dropout=0.1\nmodel.batch_norm=false") == \
        {"epochs": "3", "model_kwargs": {"dropout": 0.1, "batch_norm": False}}
    with pytest.raises(ExperimentError, match="write FIELD=VALUE"):
        xv.parse_settings("epochs")
    with pytest.raises(ExperimentError, match="at most 20 lines"):
        xv.parse_settings("\n".join(f"epochs={i}" for i in range(1, 30)))


def test_build_spec_applies_the_preset_and_names_a_bad_field(store):
    spec = xv.build_spec("e1", "mnist", "cnn2", "epochs=1\nsubset=100", "lr=0.001,0.01", repeats=2)
    assert spec.base["model"] == "cnn2" and spec.base["epochs"] == 1 and spec.base["subset"] == 100
    assert spec.grid == {"lr": [0.001, 0.01]} and spec.n_trials() == 4
    search = xv.build_spec("e2", "mnist", "cnn2", space="lr=0.0001:0.1:log", sampler="tpe", trials=5)
    assert search.space == {"lr": (0.0001, 0.1, True)} and search.n_trials() == 5
    with pytest.raises(ExperimentError, match="^base settings: epochs must be <= 1000"):
        xv.build_spec("e3", "mnist", "cnn2", "epochs=5000", "lr=0.001,0.01")
    with pytest.raises(ExperimentError, match="^lr=-1"):
        xv.build_spec("e4", "mnist", "cnn2", "", "lr=0.001,-1")
    with pytest.raises(ExperimentError, match="^name"):
        xv.build_spec("../x", "mnist", "cnn2", "", "lr=0.001,0.01")
    with pytest.raises(ExperimentError, match="base settings: unknown preset"):
        xv.build_spec("e5", "mnist", "nope", "", "lr=0.001,0.01")


def test_leaderboard_ranks_by_validation_accuracy_never_by_test():
    rows = xv.leaderboard(REPORT)
    assert [r["trial"] for r in rows] == [1, 0, 2, 3]  # trial 0 has the better test accuracy: it does not count
    assert rows[0] == {"rank": 1, "trial": 1, "run": "e-t001", "state": "complete", "val acc": 0.86, "test acc": 0.70,
                       "batch norm (model)": "true", "seed": "0"}
    assert [r["trial"] for r in xv.leaderboard(REPORT, limit=2)] == [1, 0]


def test_effect_rows_are_in_points_with_the_interval_in_words():
    rows = xv.effect_rows(REPORT)
    assert rows[1] == {"field": "batch norm (model)", "value": "true", "runs": 2, "mean val acc": 0.86,
                       "std (points)": 1.0, "vs base (points)": 6.0, "95% interval (points)": "+4.00 to +8.00"}
    assert rows[0]["95% interval (points)"] == "base" and rows[0]["vs base (points)"] is None
    assert rows[2]["95% interval (points)"] == "" and rows[2]["vs base (points)"] == -30.0  # one run: no interval


def test_counts_importances_best_and_compare_selection():
    assert xv.count_text(REPORT["counts"]) == "2 done · 0 running · 1 queued · 1 pruned"
    assert xv.count_text({**REPORT["counts"], "failed": 2}).endswith("1 pruned · 2 failed")
    assert xv.finished_fraction(REPORT["counts"]) == 0.75
    assert xv.importance_rows(REPORT) == [{"field": "batch size", "importance": 0.75},
                                          {"field": "lr", "importance": 0.25}]
    assert xv.best_text(REPORT) == ("Best: trial 1 (e-t001): batch norm (model) = true, seed = 0, validation 86.00%; "
                                    "test 70.00%, for information.")
    assert xv.best_text({}) == "No trial has a validation accuracy yet."
    assert xv.runs_for_compare(REPORT, [2, 1, 3]) == ["e-t002", "e-t001"]  # trial 3 has no run yet


def test_parallel_coordinates_give_true_false_and_text_values_ticks():
    dims, colours = xv.parallel_dimensions(REPORT)
    assert colours == [80.0, 86.0, 60.0]  # trials with a validation accuracy, in trial order
    assert dims[0] == {"label": "batch norm (model)", "values": [0, 1, 0], "tickvals": [0, 1],
                       "ticktext": ["false", "true"]}
    assert dims[1] == {"label": "seed", "values": [0.0, 0.0, 1.0]}
    assert dims[-1]["label"] == "val acc %"


def test_trials_export_as_csv_one_row_per_trial():
    rows = list(csv.reader(io.StringIO(xv.trials_csv(REPORT))))
    assert rows[0] == ["trial", "run", "state", "val_acc", "test_acc", "model.batch_norm", "seed"]
    assert rows[1] == ["0", "e-t000", "complete", "0.8", "0.79", "false", "0"]
    assert rows[4] == ["3", "", "queued", "", "", "true", "1"]


def test_a_whole_config_as_the_base_keeps_its_model_arguments_and_refuses_bad_values():
    from core.training.presets import PRESETS

    start = PRESETS["cnn_enhanced"].config("mnist", model_kwargs={"dropout": 0.1}, epochs=3).to_dict()
    base = xv.base_config("mnist", None, xv.parse_settings("epochs=2\nmodel.batch_norm=false"), start)
    assert base == {**start, "epochs": 2, "model_kwargs": {"dropout": 0.1, "batch_norm": False}}
    assert xv.config_lines(start)[:3] == ["model = cnn_enhanced", "model.dropout = 0.1", "epochs = 3"]
    with pytest.raises(ExperimentError, match="^base settings: .*lr"):
        xv.base_config("mnist", None, {}, {**start, "lr": -1})
    with pytest.raises(ExperimentError, match="^base settings: "):
        xv.base_config("mnist", None, {}, {**start, "no_such_field": 1})
