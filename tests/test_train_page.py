"""AppTest of the Train page: the form, presets, validation, a real start, the live view and the run actions."""

import json
import os
from dataclasses import fields

from core import runs
from core.config import TrainConfig
from core.presets import PRESETS
from core.train import run
from tests.conftest import open_page, tiny_config
from tests.test_launcher import no_orphans, state, wait_for  # noqa: F401  (no_orphans is a fixture)

FIELD = "train_f_"


def widget(at, key):
    for kind in ("number_input", "selectbox", "checkbox", "text_input", "radio", "pills", "button"):
        found = [w for w in getattr(at, kind) if w.key == key]
        if found:
            return found[0]
    raise AssertionError(f"no widget with key {key!r}")


def form_config(at) -> dict:
    """The settings the form shows, as a config dict."""
    values = {f.name: widget(at, FIELD + f.name).value for f in fields(TrainConfig) if f.name != "dataset"}
    values["model_kwargs"] = json.loads(values["model_kwargs"])
    return {"dataset": widget(at, "train_dataset").value, **values}


def texts(at, kind):
    return " ".join(str(e.value) for e in getattr(at, kind))


def made_run(store, name, **overrides):
    path = store / name
    config = tiny_config(**overrides)
    runs.RunWriter.create(path, config.to_dict(), state="running")
    run(config, path)
    return path


def test_renders_every_setting_with_its_help_on_an_empty_store(store):
    at = open_page("pages/train.py")
    assert not at.exception
    assert at.title[0].value == "Train"
    assert "No runs yet" in texts(at, "info")
    for f in fields(TrainConfig):
        if f.name != "dataset":
            assert widget(at, FIELD + f.name).help == f.metadata["help"], f.name
    assert widget(at, "train_dataset").value in ("mnist", "fashion-mnist")
    assert widget(at, "train_nproc").value == 1
    model = widget(at, FIELD + "model")
    assert model.value == TrainConfig.model and "parameters" in model.format_func(model.value)
    assert "Our CPU-fast net" in texts(at, "caption")
    assert not widget(at, "train_start").disabled


def test_a_preset_fills_the_form_for_the_chosen_dataset(store):
    at = open_page("pages/train.py")
    widget(at, FIELD + "epochs").set_value(3)
    widget(at, "train_preset").set_value("cnn_basic").run()
    assert not at.exception
    dataset = widget(at, "train_dataset").value
    assert form_config(at) == PRESETS["cnn_basic"].config(dataset).to_dict()
    assert widget(at, FIELD + "model").value == "cnn_basic" and widget(at, FIELD + "optimizer").value == "adam"
    widget(at, "train_dataset").set_value("fashion-mnist").run()
    widget(at, "train_preset").set_value("fast").run()
    assert form_config(at) == PRESETS["fast"].config("fashion-mnist").to_dict()
    assert widget(at, FIELD + "hflip").value is True
    widget(at, "train_dataset").set_value("mnist").run()  # the preset follows the dataset: no flips for digits
    assert form_config(at) == PRESETS["fast"].config("mnist").to_dict()
    assert widget(at, FIELD + "hflip").value is False
    assert PRESETS["fast"].title in texts(at, "caption")


def test_bad_values_are_refused_with_the_config_messages(store):
    at = open_page("pages/train.py")
    widget(at, FIELD + "lr").set_value(0.0)
    widget(at, FIELD + "patience").set_value(3)
    widget(at, FIELD + "val_fraction").set_value(0.0)
    widget(at, FIELD + "model_kwargs").set_value('{"dropout": ').run()
    assert not at.exception
    errors = texts(at, "error")
    assert "lr must be > 0, got 0" in errors and "patience needs a validation split" in errors
    assert "model_kwargs" in errors and widget(at, "train_start").disabled
    widget(at, FIELD + "lr").set_value(0.01)
    widget(at, FIELD + "patience").set_value(0)
    widget(at, FIELD + "model_kwargs").set_value('{"width": 3}').run()
    assert "does not take these arguments" in texts(at, "error")  # the model itself refuses it
    widget(at, FIELD + "model_kwargs").set_value("{}").run()
    assert not at.error and not widget(at, "train_start").disabled
    assert not store.exists() or not any(store.iterdir())


def test_start_creates_a_run_that_completes_and_is_listed(store):
    at = open_page("pages/train.py")
    widget(at, "train_dataset").set_value("mnist").run()
    settings = {"model": "cnn2", "epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 3e-3,
                "schedule": "constant", "limit_batches": 3, "threads": 1, "precision": "fp32"}
    for name, value in settings.items():
        widget(at, FIELD + name).set_value(value)
    widget(at, "train_name").set_value("page-run")
    widget(at, "train_start").click().run()
    assert not at.exception
    path = store / "page-run"
    assert (path / "config.json").is_file() and "Started page-run" in texts(at, "success")
    assert widget(at, "train_name").value == ""  # ready for the next run
    assert runs.read_json(path / "config.json")["limit_batches"] == 3
    assert widget(at, "train_watch").value == str(path)
    assert "Status:" in texts(at, "markdown")
    wait_for("the page's run to complete", lambda: state(path) == "completed")
    at.run()
    assert not at.exception
    assert "`completed`" in texts(at, "markdown")
    test_acc = runs.read_run(path).summary["test_acc"]
    assert f"{test_acc:.2%}" in [m.value for m in at.metric]
    table = at.dataframe[0].value
    assert list(table["run"]) == ["page-run"] and table["status"][0] == "completed"
    assert table["test acc"][0] == test_acc and table["epochs"][0] == "2/2"
    assert widget(at, "train_resume").disabled and not widget(at, "train_delete").disabled


def test_a_queued_run_shows_its_place_and_can_be_stopped(store):
    path = store / "waiting"
    runs.RunWriter.create(path, tiny_config().to_dict(), state="queued")
    runs.RunWriter(path).set_status("queued", pid=os.getpid(), queue_position=1, max_concurrent=1)
    at = open_page("pages/train.py")
    assert not at.exception
    assert "2nd in line (1 run ahead)" in texts(at, "info")
    assert widget(at, "train_delete").disabled and widget(at, "train_resume").disabled
    widget(at, "train_stop").click().run()
    assert runs.stop_requested(path)


def test_a_diverged_run_shows_its_error_and_what_to_try(store):
    path = made_run(store, "diverged", lr=100.0, optimizer="sgd")
    at = open_page("pages/train.py")
    assert not at.exception
    status = runs.read_run(path).status
    assert status["state"] == "diverged"
    assert f"This run diverged: {status['error']}" in texts(at, "error")
    assert "Lower the learning rate" in texts(at, "info")
    assert not widget(at, "train_resume").disabled


def test_delete_asks_for_confirmation(store):
    path = made_run(store, "old")
    at = open_page("pages/train.py")
    widget(at, "train_delete").click().run()
    assert "Delete **old**" in texts(at, "warning")
    widget(at, "train_delete_no").click().run()
    assert path.exists() and not at.warning
    widget(at, "train_delete").click().run()
    widget(at, "train_delete_yes").click().run()
    assert not at.exception and not path.exists()
    assert "No runs yet" in texts(at, "info")
