"""Faults seen from the pages: a store with damaged runs and junk, and a data root that points nowhere.

Every page is opened in AppTest over the real run store code; none may raise, and each says what is wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from core.store import runs
from core.training import session as train
from core.views.catalog import list_finished_runs
from tests.conftest import REPO, open_page, tiny_config
from tests.test_predict_page import png_bytes, seven_photo, texts

PAGES = ("home", "train", "data", "evaluate", "predict", "compare")


@pytest.fixture
def damaged_store(store):
    """One good finished run and, beside it, every kind of damage a store can collect."""
    good = store / "good"
    config = tiny_config()
    runs.RunWriter.create(good, config.to_dict(), state="running")
    train.run(config, good)

    torn = store / "torn-metrics"  # a crash mid-write: a truncated last line, and a line of garbage
    shutil.copytree(good, torn)
    with open(torn / "metrics.jsonl", "a") as f:
        f.write("\x00\x17not json at all\n{\"type\": \"epoch\", \"epoch\": 3, \"val_a")

    no_summary = store / "no-summary"
    shutil.copytree(good, no_summary)
    (no_summary / "summary.json").unlink()

    junk = store / "junk"  # every file present, none readable
    junk.mkdir()
    for name in ("config.json", "status.json", "metrics.jsonl", "summary.json", "best.pt", "test_outputs.npz"):
        (junk / name).write_bytes(os.urandom(257))

    bad_outputs = store / "bad-outputs"  # test outputs of the wrong shape
    shutil.copytree(good, bad_outputs)
    (bad_outputs / "test_outputs.npz").write_bytes(b"PK\x03\x04" + os.urandom(64))

    (store / "notes.txt").write_text("a stray file in the store")
    (store / "empty-dir").mkdir()
    return store


def test_every_page_survives_a_store_of_damaged_runs_and_says_what_is_wrong(damaged_store):
    listed = {r.name: r for r in runs.list_runs()}
    assert {"good", "torn-metrics", "no-summary", "junk", "bad-outputs"} <= set(listed)
    assert listed["good"].state == "completed" and not listed["good"].problems
    assert listed["junk"].state == "failed" and listed["junk"].problems
    assert "summary.json is missing" in listed["no-summary"].problems
    events, skipped = runs.read_metrics(damaged_store / "torn-metrics")
    assert skipped == 2 and [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2]

    for page in PAGES:
        at = open_page(f"app/{page}.py")
        assert not at.exception, (page, at.exception)

    at = open_page("app/train.py")
    at.session_state["train_view"] = "All runs"
    table = at.run().dataframe[0].value
    assert {"good", "torn-metrics", "no-summary", "junk", "bad-outputs"} <= set(table["run"])
    assert set(table.loc[table["run"] == "junk", "status"]) == {"failed"}

    offered = [str(info.path) for info in list_finished_runs()]
    assert {str(damaged_store / n) for n in ("good", "torn-metrics", "no-summary", "bad-outputs")} <= set(offered)
    at = open_page("app/evaluate.py")
    for path in offered:  # every run the Evaluate page offers opens, or says why it cannot
        at.selectbox(key="eval_run").set_value(path).run()
        assert not at.exception, (path, at.exception)
        if path.endswith(("/junk", "/bad-outputs")):
            assert at.error, path
    at.selectbox(key="eval_run").set_value(str(damaged_store / "torn-metrics")).run()
    assert not at.exception and at.metric  # the epochs before the damage still make a full page


def test_with_the_data_root_pointing_nowhere_pages_say_so_and_predict_still_works(store, monkeypatch,
                                                                                   mnist_pretrained, tmp_path):
    good = store / "good"  # trained while the data was there
    config = tiny_config()
    runs.RunWriter.create(good, config.to_dict(), state="running")
    train.run(config, good)
    nowhere = tmp_path / "no-such-data"
    monkeypatch.setenv("MNIST_STUDIO_DATA", str(nowhere))
    monkeypatch.setenv("MNIST_STUDIO_PRETRAINED", str(mnist_pretrained[0]))

    for page in ("train", "data"):  # pages that need the images say what is missing and where it looks
        at = open_page(f"app/{page}.py")
        if page == "train":  # it opens on the latest run; the notice belongs to the New run form
            at.session_state["train_view"] = "New run"
            at.run()
        assert not at.exception, (page, at.exception)
        said = texts(at)
        assert "MNIST_STUDIO_DATA" in said and str(nowhere) in said, page

    at = open_page("app/evaluate.py")  # the stored metrics still show; the images need the data
    assert not at.exception and at.metric
    assert "MNIST_STUDIO_DATA" in texts(at)

    at = open_page("app/compare.py")
    assert not at.exception

    at = open_page("app/predict.py")  # pretrained models need no dataset
    at.radio(key="predict_source").set_value("Upload").run()
    at.file_uploader(key="predict_upload").set_value(("seven.png", png_bytes(seven_photo()), "image/png"))
    at.run()
    assert not at.exception
    assert at.metric and at.metric[0].value in [str(d) for d in range(10)]
    assert not nowhere.exists()  # nothing was created where the data should be


@pytest.mark.parametrize("name", ["..", "/abs", "a/b", "bad\nname"])
def test_the_cli_refuses_run_names_that_could_leave_the_store(store, name):
    before = set(store.parent.rglob("*"))
    result = subprocess.run([sys.executable, "-m", "core.train", "--name", name, "--dataset", "mnist",
                             "--epochs", "1", "--limit-batches", "1", "--quiet"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert result.returncode == 2, result.stderr
    assert "run name" in result.stderr.lower()
    assert set(store.parent.rglob("*")) - before <= {store}  # at most the (empty) runs folder itself
    assert not store.exists() or not any(store.iterdir())


def test_a_damaged_config_cannot_be_resumed_and_says_why(store):
    path = store / "edited"
    runs.RunWriter.create(path, tiny_config().to_dict(), state="stopped")
    (path / "config.json").write_text(json.dumps({**tiny_config().to_dict(), "lr": -1, "epochs": "many"}))
    result = subprocess.run([sys.executable, "-m", "core.train", "--resume", str(path), "--quiet"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert result.returncode == 2
    assert "lr must be > 0, got -1" in result.stderr and "epochs" in result.stderr
    assert runs.read_json(path / "config.json")["lr"] == -1  # nothing was rewritten
