"""AppTest of the Experiments page: an empty store, the run count and estimate before a start, a real start
that trains on the tiny data, and the `pruned` state as the other pages show it."""

import os
import signal

import pytest

from core.experiments import report
from core.experiments import store as experiment_store
from core.store import runs
from core.training.session import run
from tests.conftest import open_page, tiny_config, wait_for

TINY_SETTINGS = "epochs=1\nbatch_size=64\nval_fraction=0.2\nlimit_batches=3\nthreads=1\nprecision=fp32"


def widget(at, key):
    for kind in ("number_input", "selectbox", "checkbox", "text_input", "text_area", "radio", "button",
                 "multiselect", "pills"):
        found = [w for w in getattr(at, kind) if w.key == key]
        if found:
            return found[0]
    raise AssertionError(f"no widget with key {key!r}")


def texts(at, kind):
    return " ".join(str(e.value) for e in getattr(at, kind))


@pytest.fixture
def no_orphan_workers(experiments):
    """Stop (and at worst kill) the workers a test leaves behind."""
    yield
    for name in experiment_store.list_experiments():
        experiment_store.request_stop(name)
    for path in runs.scan(runs.runs_root()):
        pid = path.status.get("pid")
        if runs.pid_alive(pid) and pid != os.getpid():
            try:
                wait_for("the leftover worker to stop", lambda p=pid: not runs.pid_alive(p), timeout=30)
            except AssertionError:
                os.killpg(pid, signal.SIGKILL)


def fill_custom(at, name="page-exp", grid="lr=0.001,0.01", repeats=2):
    widget(at, "exp_dataset").set_value("mnist")
    widget(at, "exp_preset").set_value("cnn2")
    widget(at, "exp_custom_name").set_value(name)
    widget(at, "exp_settings").set_value(TINY_SETTINGS)
    if grid is not None:
        widget(at, "exp_grid").set_value(grid)
        widget(at, "exp_repeats").set_value(repeats)
    return at.run()


def test_renders_on_an_empty_store_with_run_counts_and_estimates_before_anything_starts(experiments):
    at = open_page("app/experiments.py")
    assert not at.exception
    assert at.title[0].value == "Experiments"
    assert [t.label for t in at.tabs] == ["New experiment", "Watch and results"]
    markdown = texts(at, "markdown")
    assert "Does batch norm help?" in markdown and "**16 runs** · about" in markdown  # 8 configurations x 2 seeds
    assert widget(at, "exp_ready_batchnorm_quick").label == "Start Does batch norm help? (quick)"
    fill_custom(at)
    assert not at.exception and not at.error
    assert "**4 runs** · about" in texts(at, "markdown")  # 2 learning rates x 2 seeds
    assert not widget(at, "exp_start").disabled
    widget(at, "exp_grid").set_value("lr=0.001,-1").run()
    assert "lr=-1" in texts(at, "error") and widget(at, "exp_start").disabled
    assert widget(at, "exp_workers").max == 1  # bounded by the training slots
    assert experiment_store.list_experiments() == [] and not experiments.exists()


def test_the_train_form_becomes_the_base_of_an_experiment(experiments):
    from app.components.common import TRAIN_FORM_BASE
    from core.views import experiments as xv

    at = open_page("app/train.py")
    at.session_state["train_view"] = "New run"
    at.run()
    widget(at, "train_dataset").set_value("mnist").run()
    widget(at, "train_preset").set_value("cnn_enhanced").run()
    widget(at, "train_f_lr").set_value(0.005)
    widget(at, "train_f_vflip").set_value(True)
    widget(at, "train_f_model_kwargs").set_value('{"dropout": 0.1}')
    widget(at, "train_to_experiment").click().run()
    assert not at.exception and at.title[0].value == "Experiments"
    assert at.session_state["exp_view"] == "New experiment"  # opened on the form, not on Watch
    assert widget(at, "exp_base_source").value == "the Train form"
    handed = at.session_state[TRAIN_FORM_BASE]["config"]
    assert handed["lr"] == 0.005 and handed["vflip"] is True and handed["model_kwargs"] == {"dropout": 0.1}
    shown = " ".join(c.value for c in at.code)
    assert "model = cnn_enhanced" in shown and "model.dropout = 0.1" in shown and "lr = 0.005" in shown
    assert "vflip = true" in shown and "on **mnist**" in texts(at, "caption")
    at.switch_page("app/experiments.py")  # AppTest's later runs would rerun Train, the page it was switched to
    widget(at, "exp_custom_name").set_value("from-train")
    widget(at, "exp_settings").set_value("epochs=1\nmodel.batch_norm=true")
    widget(at, "exp_grid").set_value("model.dropout=0,0.25")
    widget(at, "exp_repeats").set_value(2).run()
    assert not at.exception and not at.error and not widget(at, "exp_start").disabled
    assert "**4 runs** · about" in texts(at, "markdown")
    spec = xv.build_spec("from-train", "mnist", None, "epochs=1\nmodel.batch_norm=true", "model.dropout=0,0.25",
                         repeats=2, start=handed)  # what the page builds: the form's config, the changes on top
    assert spec.base == {**handed, "epochs": 1, "model_kwargs": {"dropout": 0.1, "batch_norm": True}}
    widget(at, "exp_base_source").set_value("a preset").run()  # back to a preset: the dataset picker returns
    assert not at.exception and widget(at, "exp_preset").value
    assert experiment_store.list_experiments() == []


def test_a_running_trial_shows_in_the_train_pages_live_view(experiments):
    from core.experiments import worker
    from core.views import experiments as xv

    experiment_store.create_experiment(xv.build_spec("live", "mnist", "cnn2", TINY_SETTINGS, "lr=0.001,0.01"))
    opened = worker.open_study("live")
    trial = worker.claim_trial(opened)  # this test process stands in for the worker and the trainer
    trial.set_user_attr("run", "live-t000")
    config = opened.spec.trial_config(worker.suggest_params(opened.spec, trial))
    writer = runs.RunWriter.create(runs.runs_root() / "live-t000", config.to_dict(), state="running")
    writer.set_status("running", pid=os.getpid())
    writer.log({"type": "start", "epoch": 0, "total_epochs": 1, "steps_per_epoch": 10, "total_steps": 10})
    for step in range(1, 5):
        writer.log({"type": "step", "epoch": 1, "step": step, "loss": 2.0 / step, "elapsed": step / 10})
    writer.log({"type": "epoch", "epoch": 1, "step": 4, "train_loss": 0.9, "train_acc": 0.7, "val_loss": 0.8,
                "val_acc": 0.75, "elapsed": 1.0, "epoch_seconds": 1.0})
    at = open_page("app/experiments.py")
    assert not at.exception and at.session_state["exp_view"] == "Watch and results"
    bars = [p.proto.text for p in at.get("progress")]
    assert "0 done · 1 running · 1 queued · 0 pruned" in bars
    assert any(b.startswith("trial 0 (lr = 0.001): ") for b in bars)  # the Train page's progress line
    markdown = texts(at, "markdown")
    assert "`running`" in markdown and "Best validation accuracy so far: **75.00%**" in markdown
    assert [c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")] == ["exp_trial_steps_0"]
    experiment_store.request_stop("live")


def test_starting_a_tiny_experiment_creates_it_trains_it_and_shows_its_effects(experiments, no_orphan_workers):
    at = fill_custom(open_page("app/experiments.py"))
    widget(at, "exp_start").click().run()
    assert not at.exception
    assert "Started experiment page-exp" in texts(at, "success")
    assert experiment_store.list_experiments() == ["page-exp"]
    spec = experiment_store.load_spec("page-exp")
    assert spec.grid == {"lr": [0.001, 0.01]} and spec.repeats == 2 and spec.base["model"] == "cnn2"
    assert at.session_state["exp_view"] == "Watch and results" and widget(at, "exp_name").value == "page-exp"
    wait_for("the experiment's four trials", lambda: report.report("page-exp")["counts"]["complete"] == 4,
             timeout=300)
    at.run()
    assert not at.exception
    assert "4 done · 0 running · 0 queued · 0 pruned" in [p.proto.text for p in at.get("progress")]
    leaderboard = next(d.value for d in at.dataframe if "rank" in d.value.columns)
    assert len(leaderboard) == 4 and list(leaderboard["rank"]) == [1, 2, 3, 4]
    assert list(leaderboard["val acc"]) == sorted(leaderboard["val acc"], reverse=True)
    effects = next(d.value for d in at.dataframe if "field" in d.value.columns)
    assert list(effects["value"]) == ["0.001", "0.01"] and list(effects["runs"]) == [2, 2]
    assert "lr 0.01 instead of 0.001" in texts(at, "markdown")
    assert widget(at, "exp_stop").disabled and widget(at, "exp_resume").disabled
    assert (runs.runs_root() / "page-exp-t000" / "config.json").is_file()

    best_two = list(leaderboard["trial"])[:2]
    assert widget(at, "exp_compare_page-exp").value == best_two
    widget(at, "exp_open_compare").click().run()  # the Compare page opens with the two trials chosen
    assert not at.exception and at.title[0].value == "Compare"
    chosen = [str(p) for p in at.multiselect[0].value]
    assert sorted(p.rsplit("/", 1)[1] for p in chosen) == sorted(f"page-exp-t{n:03d}" for n in best_two)


def test_pruned_runs_are_shown_as_such_on_train_home_and_the_pickers(store):
    path = store / "pruned-run"
    config = tiny_config()
    runs.RunWriter.create(path, {**config.to_dict(), "experiment": {"name": "exp", "trial": 3}}, state="running")
    run(config, path)
    runs.RunWriter(path).set_status("pruned", hint="pruned by the median pruner")
    assert runs.read_run(path).state == "pruned"

    at = open_page("app/train.py")
    at.session_state["train_view"] = "All runs"
    at.run()
    assert at.dataframe[0].value["status"][0] == "pruned"
    at.session_state["train_view"] = "Watch"
    at.run()
    assert "`pruned`" in texts(at, "markdown") and "experiment exp's pruner" in texts(at, "info")
    assert widget(at, "train_resume").disabled

    home = open_page("app/home.py")
    assert home.dataframe[0].value["status"][0] == "pruned"
    evaluate = open_page("app/evaluate.py")  # a pruned run with weights and test outputs is usable
    assert [o for o in widget(evaluate, "eval_run").options if o.endswith(" · pruned")]


def test_a_search_shows_importances_and_confirms_its_top_three_with_three_seeds(experiments, no_orphan_workers):
    at = open_page("app/experiments.py")
    widget(at, "exp_sampler").set_value("random").run()
    fill_custom(at, name="page-search", grid=None)
    widget(at, "exp_space").set_value("lr=0.0001:0.1:log\nweight_decay=0:0.01")
    widget(at, "exp_trials").set_value(4)
    at.run()
    assert "**4 runs** · about" in texts(at, "markdown")
    widget(at, "exp_start").click().run()
    assert not at.exception and experiment_store.list_experiments() == ["page-search"]
    wait_for("the search's four trials", lambda: report.report("page-search")["counts"]["complete"] == 4,
             timeout=300)
    at.run()
    assert not at.exception
    importances = next(d.value for d in at.dataframe if "importance" in d.value.columns)
    assert set(importances["field"]) == {"lr", "weight decay"}
    assert "Best: trial" in texts(at, "markdown")
    widget(at, "exp_confirm").click().run()
    assert not at.exception and "the top 3 configurations with 3 seeds" in texts(at, "success")
    follow_up = experiment_store.load_spec("page-search-confirm")
    assert follow_up.n_trials() == 9 and widget(at, "exp_name").value == "page-search-confirm"
    assert widget(at, "exp_name").options == ["page-search-confirm", "page-search"]  # newest first


def test_in_guest_mode_a_visitor_may_watch_experiments_but_not_start_them(experiments, monkeypatch):
    monkeypatch.setenv("MNIST_STUDIO_MODE", "guest")
    at = open_page("app/experiments.py")
    assert not at.exception
    assert "only its owner starts, stops or resumes experiments" in texts(at, "info")
    starts = [b for b in at.button if b.key and (b.key == "exp_start" or b.key.startswith("exp_ready_"))]
    assert starts and all(b.disabled for b in starts)
    assert experiment_store.list_experiments() == []
