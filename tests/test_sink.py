"""The training loop's one event sink: rank 0 writes the run and tells its listeners, other ranks do nothing."""

import pytest
import torch

from core.store import events, runs
from core.store.checkpoint import load_checkpoint
from core.training.sink import NullSink, RunSink


def test_the_run_sink_writes_every_event_once_and_tells_each_listener(tmp_path):
    heard_a, heard_b = [], []
    sink = RunSink(runs.RunWriter.create(tmp_path / "r", {"dataset": "mnist"}, state="running"),
                   [heard_a.append, None, heard_b.append])
    sink.emit("resume", epoch=2)
    sink.emit("end", state="completed", epoch=3)
    logged, bad = events.read_events(tmp_path / "r")
    assert bad == 0 and [(e["type"], e["epoch"]) for e in logged] == [("resume", 2), ("end", 3)]
    assert heard_a == heard_b == [{"type": "resume", "epoch": 2}, {"type": "end", "state": "completed", "epoch": 3}]
    with pytest.raises(ValueError, match="unknown \\['loss'\\]"):
        sink.emit("resume", epoch=4, loss=1.0)
    assert len(events.read_events(tmp_path / "r")[0]) == 2  # a malformed event is never written


def test_the_run_sink_saves_checkpoints_and_clears_a_served_stop(tmp_path):
    sink = RunSink(runs.RunWriter.create(tmp_path / "r", {"dataset": "mnist"}, state="running"))
    model = torch.nn.Linear(2, 3)
    sink.save_checkpoint("last.pt", model, lambda: {"arch": "linear", "model_kwargs": {}, "dataset": "mnist",
                                                     "class_names": list("abc"), "mean": 0.1, "std": 0.3, "epoch": 1})
    payload = load_checkpoint(tmp_path / "r" / "last.pt")
    assert payload["epoch"] == 1 and torch.equal(payload["state_dict"]["weight"], model.weight.detach())
    runs.request_stop(tmp_path / "r")
    assert sink.stop_requested()
    sink.close()
    assert not sink.stop_requested()


def test_the_null_sink_of_other_ranks_writes_nothing_and_never_builds_a_checkpoint(tmp_path):
    sink = NullSink()
    built = []
    sink.save_checkpoint("last.pt", torch.nn.Linear(2, 3), lambda: built.append(1) or {})
    sink.set_status("running", epoch=1)
    sink.write_test_outputs(None, None, {})
    assert sink.emit("end", state="stopped") == {"type": "end", "state": "stopped"}
    with pytest.raises(ValueError):  # a malformed event fails on every rank alike
        sink.emit("end")
    assert not built and not sink.stop_requested() and list(tmp_path.iterdir()) == []
