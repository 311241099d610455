
import pytest

from core.store import events, progress, runs
from core.training.session import run
from tests.conftest import tiny_config


def _events():
    """A run's events as core.train writes them: two epochs of three steps, a test score, the end."""
    return [
        {"type": "start", "time": 100.0, "epoch": 0, "total_epochs": 2, "steps_per_epoch": 3, "total_steps": 6},
        {"type": "step", "time": 101.0, "epoch": 1, "step": 1, "loss": 2.0, "images_per_sec": 500.0, "eta": 50.0,
         "elapsed": 1.0, "total_steps": 6},
        {"type": "step", "time": 102.0, "epoch": 1, "step": 3, "loss": 1.0, "images_per_sec": 600.0, "eta": 30.0,
         "elapsed": 2.0, "total_steps": 6},
        {"type": "epoch", "time": 103.0, "epoch": 1, "step": 3, "train_loss": 1.5, "train_acc": 0.5,
         "val_loss": 1.2, "val_acc": 0.6, "epoch_seconds": 3.0, "elapsed": 3.0, "images_per_sec": 700.0},
        {"type": "step", "time": 104.0, "epoch": 2, "step": 5, "loss": 0.5, "images_per_sec": 800.0, "eta": 10.0,
         "elapsed": 4.0, "total_steps": 6},
    ]


def test_summarize_reports_where_a_running_run_stands():
    p = progress.summarize(_events())
    assert (p.epoch, p.epochs_done, p.total_epochs, p.step, p.total_steps) == (2, 1, 2, 5, 6)
    assert p.fraction == pytest.approx(5 / 6)
    assert p.images_per_sec == 800.0 and p.eta == 10.0 and p.elapsed == 4.0 and p.updated == 104.0
    assert p.eta_now(now=107.0) == 7.0 and p.eta_now(now=500.0) == 0.0
    assert p.loss_steps == [1, 3, 5] and p.loss == [2.0, 1.0, 0.5]
    assert [(r.epoch, r.train_loss, r.val_acc) for r in p.epochs] == [(1, 1.5, 0.6)]
    assert p.best_val_acc == 0.6 and p.test_acc is None and p.end_state is None


def test_a_completed_run_is_whole_even_when_it_stopped_early():
    events = _events() + [
        {"type": "epoch", "epoch": 2, "step": 5, "train_loss": 0.7, "train_acc": 0.8, "val_loss": 0.9,
         "val_acc": 0.55},
        {"type": "early_stop", "epoch": 2, "best_epoch": 1},
        {"type": "test", "epoch": 2, "test_acc": 0.61},
        {"type": "end", "state": "completed", "epoch": 2},
    ]
    p = progress.summarize(events)
    assert p.fraction == 1.0 and p.early_stopped and p.end_state == "completed" and p.eta is None
    assert p.best_val_acc == 0.6 and p.test_acc == 0.61 and p.epochs_done == 2


def test_missing_partial_and_junk_events_are_skipped():
    events = [
        "not a dict", {"type": "step"}, {"type": "step", "step": "x"}, {"type": "epoch"},
        {"type": "step", "step": 4, "loss": None, "eta": float("nan")},
        {"type": "step", "step": 2, "loss": True},
        {"type": "epoch", "epoch": 1, "train_loss": "bad", "val_acc": None},
        {"type": "end", "state": 7},
        {"type": "mystery", "step": 99},
    ]
    p = progress.summarize(events, {"epochs": 9})
    assert p.step == 2 and p.loss == [] and p.eta is None and p.total_epochs == 9 and p.total_steps is None
    assert p.fraction == 0.0 and p.best_val_acc is None and p.end_state is None
    assert [(r.epoch, r.train_loss, r.val_acc) for r in p.epochs] == [(1, None, None)]
    empty = progress.summarize([])
    assert not empty.has_data and empty.fraction == 0.0 and empty.eta_now() is None


def test_resume_drops_the_epochs_after_the_resumed_one_and_later_steps_win():
    events = _events() + [
        {"type": "epoch", "epoch": 2, "step": 6, "train_loss": 9.0, "val_acc": 0.1},
        {"type": "resume", "epoch": 1},
        {"type": "start", "epoch": 1, "total_epochs": 3, "total_steps": 9},
        {"type": "step", "epoch": 2, "step": 5, "loss": 0.25},
    ]
    p = progress.summarize(events)
    assert [r.epoch for r in p.epochs] == [1] and p.total_epochs == 3 and p.total_steps == 9
    assert dict(zip(p.loss_steps, p.loss, strict=True)) == {1: 2.0, 3: 1.0, 5: 0.25}


def test_ema_is_bias_corrected_and_follows_a_constant():
    assert progress.ema([]) == []
    assert progress.ema([4.0, 4.0, 4.0]) == pytest.approx([4.0, 4.0, 4.0])
    smooth = progress.ema([1.0, 0.0], smoothing=0.5)
    assert smooth == pytest.approx([1.0, 1 / 3])  # (0.25) / (1 - 0.25)
    assert progress.ema([3.0, 1.0], smoothing=0.0) == [3.0, 1.0]


def test_the_smoothed_loss_agrees_with_the_raw_loss_from_the_first_step():
    """TensorBoard's debiased EMA: no lag from a zero start. Without the correction the first smoothed point of a
    loss of 2.3 would be 0.23, and still 10% low after 20 steps."""
    raw = [2.3 - 0.01 * i for i in range(200)]  # a steadily falling loss
    smooth = progress.summarize([{"type": "step", "step": i, "loss": v} for i, v in enumerate(raw)]).loss_smooth
    assert smooth[0] == raw[0]
    assert all(abs(s - r) < 0.1 for s, r in zip(smooth[:20], raw[:20], strict=True))  # lags ~9 steps of 0.01
    plain, avg = [], 0.0
    for v in raw:
        avg = progress.SMOOTHING * avg + (1 - progress.SMOOTHING) * v
        plain.append(avg)
    assert plain[0] < 0.25 and raw[19] - plain[19] > 0.15  # what the correction removes


def test_thin_keeps_first_and_last_and_at_most_the_limit():
    assert progress.thin(5, 10) == [0, 1, 2, 3, 4]
    kept = progress.thin(10_001, 600)
    assert kept[0] == 0 and kept[-1] == 10_000 and len(kept) <= 600 and kept == sorted(set(kept))
    p = progress.LiveProgress(loss_steps=list(range(1000)), loss=[1.0] * 1000, loss_smooth=[1.0] * 1000)
    steps, raw, smooth = p.loss_series(max_points=50)
    assert len(steps) == len(raw) == len(smooth) <= 50 and steps[-1] == 999


def test_the_tail_of_a_real_run_matches_the_store_reader(store):
    path = store / "r"
    config = tiny_config(epochs=2)
    runs.RunWriter.create(path, config.to_dict(), state="running")
    run(config, path)
    logged, bad = events.read_events(path)
    assert events.MetricsTail(path).read() == logged and bad == 0
    p = progress.summarize(logged, config.to_dict())
    assert p.end_state == "completed" and p.epochs_done == 2 and p.fraction == 1.0
    assert p.test_acc == runs.read_run(path).summary["test_acc"] and p.loss and len(p.loss_smooth) == len(p.loss)


def test_run_duration_counts_wall_time_until_finished():
    assert progress.run_duration({"state": "running", "started": 100.0}, None, now=160.0) == 60.0
    assert progress.run_duration({"state": "stopped", "started": 100.0, "finished": 130.0}, None, now=999) == 30.0
    assert progress.run_duration({"state": "completed"}, {"train_seconds": 12.5}) == 12.5
    assert progress.run_duration({"state": "queued"}, None) is None
