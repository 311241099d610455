"""AppTest of the Train page: the form, presets, validation, a real start, the live view and the run actions."""

import json
import os
from dataclasses import fields

from core.store import launcher, runs
from core.training.config import TrainConfig, field_groups
from core.training.presets import PRESETS
from core.training.session import run
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


def show(at, view: str):
    """Open one of the page's tabs (only the open one is drawn), as a click on it does."""
    at.session_state["train_view"] = view
    return at.run()


def made_run(store, name, **overrides):
    path = store / name
    config = tiny_config(**overrides)
    runs.RunWriter.create(path, config.to_dict(), state="running")
    run(config, path)
    return path


def test_renders_every_setting_with_its_help_on_an_empty_store(store):
    at = open_page("app/train.py")
    assert not at.exception
    assert at.title[0].value == "Train"
    assert [t.label for t in at.tabs] == ["New run", "Watch", "All runs"]
    assert at.session_state["train_view"] == "New run"  # a first visit opens the form
    for f in fields(TrainConfig):
        if f.name != "dataset":
            assert widget(at, FIELD + f.name).help == f.metadata["help"], f.name
    assert widget(at, "train_dataset").value in ("mnist", "fashion-mnist")
    assert widget(at, "train_nproc").value == 1
    groups = field_groups()  # the form's sections are TrainConfig's field groups, each holding its fields
    expanders = {e.label: e for e in at.expander}
    assert list(expanders) == list(groups)
    for title, names in groups.items():
        for name in names:
            widget(expanders[title], FIELD + name)
    model = widget(at, FIELD + "model")
    assert model.value == TrainConfig.model and "parameters" in model.format_func(model.value)
    assert "Our CPU-fast net" in texts(at, "caption")
    assert not widget(at, "train_start").disabled
    show(at, "Watch")
    assert "No runs yet" in texts(at, "info") and not [w for w in at.number_input if w.key == FIELD + "epochs"]


def test_a_preset_fills_the_form_for_the_chosen_dataset(store):
    at = open_page("app/train.py")
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
    at = open_page("app/train.py")
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
    at = open_page("app/train.py")
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
    assert at.session_state["train_name"] == ""  # ready for the next run
    assert runs.read_json(path / "config.json")["limit_batches"] == 3
    assert at.session_state["train_view"] == "Watch" and widget(at, "train_watch").value == str(path)
    assert "Status:" in texts(at, "markdown")
    wait_for("the page's run to complete", lambda: state(path) == "completed")
    at.run()
    assert not at.exception
    assert "`completed`" in texts(at, "markdown")
    test_acc = runs.read_run(path).summary["test_acc"]
    assert f"{test_acc:.2%}" in [m.value for m in at.metric]
    assert widget(at, "train_resume").disabled and not widget(at, "train_delete").disabled
    show(at, "All runs")
    table = at.dataframe[0].value
    assert list(table["run"]) == ["page-run"] and table["status"][0] == "completed"
    assert table["test acc"][0] == test_acc and table["epochs"][0] == "2/2"
    assert not open_page("app/train.py").exception  # a later visit opens on its latest run


def test_a_queued_run_shows_its_place_and_can_be_stopped(store):
    path = store / "waiting"
    runs.RunWriter.create(path, tiny_config().to_dict(), state="queued")
    runs.RunWriter(path).set_status("queued", pid=os.getpid(), queue_position=1, max_concurrent=1)
    at = open_page("app/train.py")
    assert not at.exception
    assert "2nd in line (1 run ahead)" in texts(at, "info")
    assert widget(at, "train_delete").disabled and widget(at, "train_resume").disabled
    widget(at, "train_stop").click().run()
    assert runs.stop_requested(path)


def test_a_diverged_run_shows_its_error_what_to_try_and_its_log(store):
    path = made_run(store, "diverged", lr=100.0, optimizer="sgd")
    (path / launcher.LOG_NAME).write_text("".join(f"log line {i}\n" for i in range(50)))
    at = open_page("app/train.py")
    assert not at.exception
    status = runs.read_run(path).status
    assert status["state"] == "diverged"
    assert f"This run diverged: {status['error']}" in texts(at, "error")
    assert "Lower the learning rate" in texts(at, "info")
    assert [e.label for e in at.expander if e.label.startswith("Training log")] == ["Training log (last lines)"]
    assert at.code[0].value.strip() == "\n".join(f"log line {i}" for i in range(20, 50))  # the last 30 lines
    assert not widget(at, "train_resume").disabled


def test_delete_asks_for_confirmation(store):
    path = made_run(store, "old")
    at = open_page("app/train.py")
    widget(at, "train_delete").click().run()
    assert "Delete **old**" in texts(at, "warning")
    widget(at, "train_delete_no").click().run()
    assert path.exists() and not at.warning
    widget(at, "train_delete").click().run()
    widget(at, "train_delete_yes").click().run()
    assert not at.exception and not path.exists()
    assert "No runs yet" in texts(at, "info")


def test_a_training_run_shows_live_status_step_chart_and_its_finished_epochs(store):
    path = store / "live"
    writer = runs.RunWriter.create(path, tiny_config(epochs=3).to_dict(), state="running")
    writer.set_status("running", pid=os.getpid())  # alive: this test process stands in for the trainer
    writer.log({"type": "start", "epoch": 0, "total_epochs": 3, "steps_per_epoch": 10, "total_steps": 30})
    for step in range(1, 13):
        writer.log({"type": "step", "epoch": 1 + step // 10, "step": step, "loss": 2.0 / step, "elapsed": step / 10})
    writer.log({"type": "epoch", "epoch": 1, "step": 10, "train_loss": 0.9, "train_acc": 0.7, "val_loss": 0.8,
                "val_acc": 0.75, "elapsed": 1.0, "epoch_seconds": 1.0})
    at = open_page("app/train.py")
    assert not at.exception and at.session_state["train_view"] == "Watch"
    assert "`running`" in texts(at, "markdown") and "75.00%" in texts(at, "markdown")
    charts = [c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")]
    assert charts == ["train_chart_steps", "train_chart_epoch_loss", "train_chart_epoch_acc"]
    assert at.session_state["train_epochs_drawn"] == (str(path), 1)  # the status fragment redraws the page
    writer.log({"type": "epoch", "epoch": 2, "step": 20, "train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.6,
                "val_acc": 0.85, "elapsed": 2.0, "epoch_seconds": 1.0})  # when this count changes
    at.run()
    assert at.session_state["train_epochs_drawn"] == (str(path), 2) and "85.00%" in texts(at, "markdown")
