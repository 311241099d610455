"""Options that must not change training (`--monitor-test`), one that must end it early (`patience`) and one that
switches augmentation off for the last epochs (`clean_epochs`)."""

from core.store import runs
from core.store.checkpoint import load_checkpoint
from core.training import loop
from core.training.session import run
from tests.conftest import tiny_config
from tests.test_resume import assert_same, logged


def _train(store, name, config):
    path = store / name
    runs.RunWriter.create(path, config.to_dict(), state="running")
    state, summary = run(config, path)
    assert state == "completed"
    return path, summary


def _without_monitoring(payload: dict) -> dict:
    """A checkpoint less the monitor_test setting and the test accuracies it adds to the epoch history."""
    progress = payload.get("progress")
    if progress:
        history = [{k: v for k, v in e.items() if k != "test_acc"} for e in progress["history"]]
        payload = {**payload, "progress": {**progress, "history": history}}
    return {**payload, "config": {k: v for k, v in payload["config"].items() if k != "monitor_test"}}


def test_monitor_test_adds_test_accuracy_and_changes_nothing_else(store, monkeypatch):
    """Scoring the test set after each epoch leaves every weight and every logged figure as it was."""
    monkeypatch.setattr(loop, "STEP_EVENT_SECONDS", 0.0)  # log every step's loss
    settings = {"model": "fast", "epochs": 3, "optimizer": "nesterov", "lr": 0.05, "schedule": "onecycle",  # batch
                "ema": 0.9, "translate": 1, "erase": 0.25, "limit_batches": 4}  # norm, weight averaging, augmentation
    plain, plain_summary = _train(store, "plain", tiny_config(**settings))
    monitored, monitored_summary = _train(store, "monitored", tiny_config(**settings, monitor_test=True))

    epochs = [e for e in runs.read_metrics(monitored)[0] if e["type"] == "epoch"]
    assert len(epochs) == 3 and all(0 <= e["test_acc"] <= 1 for e in epochs)
    assert not [e for e in runs.read_metrics(plain)[0] if "test_acc" in e and e["type"] == "epoch"]
    a, b = logged(plain), logged(monitored)
    for (kind, _, _), values in b.items():
        if kind == "epoch":
            del values["test_acc"]  # the one addition
    assert a == b
    for name in ("last.pt", "best.pt"):
        assert_same(_without_monitoring(load_checkpoint(plain / name)),
                    _without_monitoring(load_checkpoint(monitored / name)), name)
    assert plain_summary["test_acc"] == monitored_summary["test_acc"]


def test_patience_stops_a_run_that_no_longer_improves(store):
    """With a learning rate too small to change any answer, validation accuracy stays put: patience 2 ends a
    20-epoch run after 1 + 2 epochs, logs `early_stop`, and the run completes (scored on the test set)."""
    config = tiny_config(epochs=20, optimizer="sgd", lr=1e-12, patience=2)
    path, summary = _train(store, "patient", config)
    events = runs.read_metrics(path)[0]
    epochs = [e for e in events if e["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert len({e["val_acc"] for e in epochs}) == 1  # no gain after the first epoch
    stops = [e for e in events if e["type"] == "early_stop"]
    assert len(stops) == 1 and stops[0]["epoch"] == 3
    assert summary["epochs"] == 3 and runs.read_run(path).state == "completed"
    assert load_checkpoint(path / "last.pt")["progress"]["epochs_since_best"] == 2


def test_clean_epochs_train_the_last_epochs_on_unaltered_images_with_flips_kept(store):
    """Erasing every image with all epochs clean trains exactly as no erasing at all; with one clean epoch of two
    the first epoch differs from that (it erased) and flips stay on in the clean one."""
    settings = {"model": "fast", "epochs": 2, "lr": 0.05, "limit_batches": 3}
    plain, _ = _train(store, "plain", tiny_config(**settings))
    all_clean, _ = _train(store, "all_clean", tiny_config(**settings, erase=1.0, clean_epochs=2))
    assert_same(load_checkpoint(plain / "last.pt")["state_dict"],
                load_checkpoint(all_clean / "last.pt")["state_dict"], "last.pt")
    one_clean, _ = _train(store, "one_clean", tiny_config(**settings, erase=1.0, clean_epochs=1))
    first = [e for e in runs.read_metrics(one_clean)[0] if e["type"] == "epoch"][0]
    assert first["train_loss"] != [e for e in runs.read_metrics(plain)[0] if e["type"] == "epoch"][0]["train_loss"]
    config = tiny_config(**settings, erase=1.0, hflip=True, rotate=10.0, clean_epochs=1)
    assert config.augment(1).erase == 1.0 and config.augment(1).rotate == 10.0
    last = config.augment(2)
    assert last.hflip and not (last.erase or last.rotate or last.translate or last.scale or last.stroke)
