"""The text the pages show about runs in progress (core.views.progress), from the store's data."""

from core.store import progress, runs
from core.training.session import run
from core.views import progress as texts
from core.views.formats import format_duration
from tests.conftest import tiny_config


def test_the_progress_line_says_where_a_run_stands_and_counts_the_eta_down():
    p = progress.LiveProgress(epoch=2, epochs_done=1, total_epochs=5, step=1300, total_steps=3500,
                              images_per_sec=1234.4, eta=45.0, updated=None)
    assert texts.progress_text(p, "running") == "epoch 2/5 · step 1,300/3,500 · 1,234 images/s · ETA 45s"
    assert texts.progress_text(p, "stopped") == "1/5 epochs done · step 1,300/3,500 · 1,234 images/s"
    unknown = progress.LiveProgress()
    assert texts.progress_text(unknown, "running") == "epoch 0/? · step 0/0"
    assert texts.progress_text(unknown, "queued") == "0/? epochs done · step 0/0"


def test_texts_for_ordinals_and_queue_places():
    assert [texts.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 102)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "102nd"]
    assert texts.status_text({"state": "queued", "queue_position": 1}) == "queued (2nd in line)"
    assert texts.status_text({"state": "queued"}) == "queued"
    assert texts.status_text({"state": "running", "epoch": 3, "queue_position": None}) == "running"
    assert texts.status_text({}) == "failed"
    assert "2nd in line (1 run ahead)" in texts.queue_text({"queue_position": 1, "max_concurrent": 1}, 4)
    assert "at most 1 run train" in texts.queue_text({"queue_position": 0, "max_concurrent": 1}, 4)
    assert "starting" in texts.queue_text({}, 1)


def test_run_rows_list_every_run_with_its_numbers(store):
    done, queued = store / "done", store / "queued"
    runs.RunWriter.create(done, tiny_config(epochs=2).to_dict(), state="running")
    run(tiny_config(epochs=2), done)
    runs.RunWriter.create(queued, tiny_config(epochs=7, dataset="fashion-mnist").to_dict(), state="queued")
    runs.RunWriter(queued).set_status("queued", queue_position=0)
    rows = texts.run_rows(runs.list_runs(include_pretrained=False))
    assert [r["run"] for r in rows] == ["queued", "done"]  # newest first
    summary = runs.read_run(done).summary
    assert rows[1]["status"] == "completed" and rows[1]["epochs"] == "2/2"
    assert rows[1]["test acc"] == summary["test_acc"] and rows[1]["best val acc"] == summary["best_val_acc"]
    assert rows[1]["duration"] == format_duration(summary["train_seconds"])
    assert rows[0] | {"started": None} == {"run": "queued", "dataset": "fashion-mnist", "model": "cnn2",
                                          "status": "queued (1st in line)", "epochs": "0/7", "best val acc": None,
                                          "test acc": None, "duration": "", "started": None}
