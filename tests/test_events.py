import json
import os

import numpy as np
import pytest

from core.store import events, runs
from core.store.paths import pretrained_root


def test_make_builds_declared_events_and_refuses_undeclared_fields():
    event = events.make("end", state="completed", epoch=3)
    assert event == {"type": "end", "state": "completed", "epoch": 3}
    assert events.make("end", state="stopped") == {"type": "end", "state": "stopped"}  # epoch is optional
    with pytest.raises(ValueError, match="missing \\['best_epoch'\\]"):
        events.make("early_stop", epoch=2)
    with pytest.raises(ValueError, match="unknown \\['loss'\\]"):
        events.make("resume", epoch=1, loss=0.5)
    with pytest.raises(ValueError, match="unknown event type 'mystery'"):
        events.make("mystery")


def test_number_and_integer_take_only_finite_real_numbers():
    assert [events.number(v) for v in (1, 2.5, np.float32(0.5), np.int64(7))] == [1.0, 2.5, 0.5, 7.0]
    assert [events.number(v) for v in (None, True, "3", float("nan"), float("inf"), [1], {})] == [None] * 7
    assert [events.integer(v) for v in (3, 3.9, "3", None)] == [3, 3, None, None]


def test_parse_and_read_skip_torn_and_junk_lines(tmp_path):
    assert events.parse(b'{"type": "step", "step": 1}') == {"type": "step", "step": 1}
    assert [events.parse(line) for line in ('{"type": 1}', "[1]", '{"type": "st', "", b"\xff\x00")] == [None] * 5
    (tmp_path / events.METRICS_FILE).write_bytes(b'{"type": "start"}\n\n[1]\n\xff junk\n{"type": "end", "state": "x"}\n'
                                                 b'{"type": "epoch", "ep')
    logged, bad = events.read_events(tmp_path)
    assert [e["type"] for e in logged] == ["start", "end"] and bad == 3
    assert events.read_events(tmp_path / "missing") == ([], 0)


def test_epoch_events_keep_the_last_of_each_epoch_in_order():
    logged = [{"type": "epoch", "epoch": 2, "v": "a"}, {"type": "step", "epoch": 1}, {"type": "epoch", "epoch": 1},
              {"type": "epoch", "epoch": 2, "v": "b"}, {"type": "epoch", "epoch": True}, {"type": "epoch", "epoch": 0},
              {"type": "epoch", "epoch": "3"}, {"type": "epoch"}]
    by_epoch = events.epoch_events(logged)
    assert list(by_epoch) == [1, 2] and by_epoch[2]["v"] == "b"


def test_what_the_writer_logs_reads_back_through_the_schema(tmp_path):
    writer = runs.RunWriter.create(tmp_path / "r", {"dataset": "mnist"}, state="running")
    writer.log(events.make("resume", epoch=1))
    writer.log(events.make("end", state="completed", epoch=float("nan")))
    logged, bad = events.read_events(tmp_path / "r")
    assert bad == 0 and [e["type"] for e in logged] == ["resume", "end"]
    assert logged[1]["epoch"] is None and events.number(logged[0]["time"]) is not None


def test_a_shipped_pretrained_run_reads_through_the_schema():
    """The shipped runs' metrics.jsonl keep reading: every line parses and every event has a declared type."""
    pretrained = pretrained_root()
    shipped = sorted(p for p in pretrained.iterdir() if (p / events.METRICS_FILE).is_file())
    assert shipped, f"no shipped run under {pretrained}"
    for path in shipped:
        logged, bad = events.read_events(path)
        assert bad == 0 and logged and {e["type"] for e in logged} <= set(events.KINDS), path.name
        assert events.epoch_events(logged), path.name
        for event in logged:
            declared = events.KINDS[event["type"]]
            assert set(declared.required) <= set(event), (path.name, event["type"])


def test_metrics_tail_reads_only_new_complete_lines_and_restarts_on_rewrite(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = events.MetricsTail(tmp_path)
    assert tail.read() == []  # no file yet
    path.write_text(json.dumps({"type": "start"}) + "\n" + '{"type": "step", "st')
    assert [e["type"] for e in tail.read()] == ["start"]  # the half-written line waits
    with open(path, "a") as f:
        f.write('ep": 1}\nnot json\n[1]\n')
    assert [e.get("step") for e in tail.read()] == [None, 1] and tail.bad_lines == 2
    logged = tail.read()
    assert len(logged) == 2  # nothing new: nothing re-read
    tmp = tmp_path / "new.jsonl"
    tmp.write_text(json.dumps({"type": "resume", "epoch": 1}) + "\n")
    os.replace(tmp, path)  # resume rewrites the file atomically
    assert [e["type"] for e in tail.read()] == ["resume"]
    path.unlink()
    assert tail.read() == []


