"""Load: five Train-page sessions press Start at the same moment while two training slots are configured."""

from __future__ import annotations

import threading
import time

from core import runs
from tests.conftest import open_page
from tests.test_launcher import no_orphans, state, wait_for  # noqa: F401  (no_orphans: autouse clean-up)

SESSIONS = 5
SLOTS = 2
SETTINGS = {"model": "cnn2", "epochs": 25, "batch_size": 64, "optimizer": "adam", "lr": 3e-3, "schedule": "constant",
            "threads": 1, "precision": "fp32"}


def ready_session(name: str):
    """A Train page with the form filled in and a run name typed, one click from Start."""
    at = open_page("pages/train.py")
    at.radio(key="train_dataset").set_value("mnist").run()
    for field, value in SETTINGS.items():
        widget = next(w for w in at.main if getattr(w, "key", None) == f"train_f_{field}")
        widget.set_value(value)
    at.text_input(key="train_name").set_value(name)
    return at


def test_five_sessions_start_at_once_two_train_the_rest_queue_and_all_finish(store, monkeypatch):
    monkeypatch.setenv("MNIST_STUDIO_MAX_CONCURRENT", str(SLOTS))
    sessions = [ready_session(f"load-{i}") for i in range(SESSIONS)]
    barrier = threading.Barrier(SESSIONS)
    errors: list = []

    def press_start(at):
        try:
            barrier.wait(timeout=60)
            at.button(key="train_start").click().run()
            assert not at.exception, at.exception
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=press_start, args=(at,)) for at in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    paths = [store / f"load-{i}" for i in range(SESSIONS)]
    assert all((p / "config.json").is_file() for p in paths)  # none lost

    most_running, queued_seen = 0, set()
    deadline = time.time() + 600
    while time.time() < deadline:
        states = [state(p) for p in paths]
        running = states.count("running")
        assert running <= SLOTS, states
        most_running = max(most_running, running)
        queued_seen |= {p.name for p, s in zip(paths, states, strict=True) if s == "queued"}
        if all(s == "completed" for s in states):
            break
        assert not set(states) - {"queued", "running", "completed"}, states
        time.sleep(0.05)
    else:
        raise AssertionError(f"not every run finished: {[state(p) for p in paths]}")

    assert most_running == SLOTS  # the slots were used, not one run at a time
    assert len(queued_seen) >= SESSIONS - SLOTS  # the others waited their turn
    for path in paths:  # each trained exactly once, to its full length
        events, _ = runs.read_metrics(path)
        assert [e["type"] for e in events].count("start") == 1, path
        assert [e["epoch"] for e in events if e["type"] == "epoch"] == list(range(1, SETTINGS["epochs"] + 1))
        assert runs.read_run(path).summary["epochs"] == SETTINGS["epochs"]
