"""Resume is exact: a run interrupted after an epoch and resumed ends bit for bit where an uninterrupted one does.

Under a real preset (`fast` for clothes: one-cycle, weight averaging, flips), with shifts and erasing on top,
the whitened stem, and bf16 autocast with channels-last (as the CPU uses them when asked for bf16).
"""

import pytest
import torch

from core.inference.engine import uses_bf16
from core.store import runs
from core.store.checkpoint import load_checkpoint
from core.training import loop
from core.training.presets import get_preset
from core.training.session import run

TIMING_KEYS = {"train_seconds", "elapsed", "epoch_seconds", "images_per_sec", "eta", "time", "test_seconds"}


def preset_config():
    return get_preset("fast").config("fashion-mnist", epochs=3, batch_size=64, limit_batches=4, translate=1,
                                     erase=0.25, precision="bf16", device="cpu", threads=1, val_fraction=0.2)


class InterruptAfterEpoch:
    """A progress bar that presses Ctrl-C right after epoch `epoch` is saved (last.pt written)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def __call__(self, event: dict) -> None:
        if event["type"] == "epoch" and event["epoch"] == self.epoch:
            raise KeyboardInterrupt


def assert_same(a, b, where="last.pt"):
    """Every tensor equal (values, dtype, shape) and every other value equal, timings aside."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            if key not in TIMING_KEYS:
                assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def count_tensors(payload) -> int:
    if isinstance(payload, torch.Tensor):
        return 1
    if isinstance(payload, dict):
        return sum(count_tensors(v) for v in payload.values())
    if isinstance(payload, (list, tuple)):
        return sum(count_tensors(v) for v in payload)
    return 0


def logged(path):
    """Every logged loss and score, keyed by (event type, epoch, step)."""
    events = runs.read_metrics(path)[0]
    out = {}
    for e in events:
        if e["type"] in ("step", "epoch", "test"):
            values = {k: e.get(k) for k in ("loss", "train_loss", "train_acc", "val_loss", "val_acc", "test_acc",
                                             "macro_f1", "lr", "val_confusion") if k in e}
            out[(e["type"], e["epoch"], e.get("step"))] = values
    return out


def test_a_resumed_preset_run_equals_an_uninterrupted_one(store, monkeypatch):
    monkeypatch.setattr(loop, "STEP_EVENT_SECONDS", 0.0)  # log every step's loss, not ~4 a second
    config = preset_config()
    assert config.ema and config.schedule == "onecycle" and config.hflip and config.model == "fast"
    assert config.model_kwargs.get("whiten", True)  # the fast net's stem is whitened from the data

    whole = store / "whole"
    runs.RunWriter.create(whole, config.to_dict(), state="running")
    assert run(config, whole)[0] == "completed"

    part = store / "part"
    runs.RunWriter.create(part, config.to_dict(), state="running")
    with pytest.raises(KeyboardInterrupt):
        run(config, part, progress_bar=InterruptAfterEpoch(1))
    assert runs.read_run(part).state == "failed" and load_checkpoint(part / "last.pt")["progress"]["epoch"] == 1
    assert run(config, part, resume=True)[0] == "completed"

    a, b = load_checkpoint(whole / "last.pt"), load_checkpoint(part / "last.pt")
    assert a["average"] is not None and a["best_state"] is not None and a["optimizer"]["state"]
    assert count_tensors(a) > 3 * len(a["state_dict"])  # weights, optimiser state, average, best
    assert_same(a, b)
    steps_whole, steps_part = logged(whole), logged(part)
    assert len([k for k in steps_whole if k[0] == "step"]) == 3 * 4  # every step of every epoch was logged
    assert steps_part == steps_whole
    assert_same(load_checkpoint(whole / "best.pt"), load_checkpoint(part / "best.pt"), "best.pt")


def test_the_preset_run_uses_bf16_and_channels_last_on_this_cpu():
    """What the test above exercises: bf16 autocast and channels-last on the CPU (asked for explicitly)."""
    from core.models.registry import create_model

    config = preset_config()
    device = torch.device("cpu")
    assert uses_bf16(device, config.precision)
    assert loop.uses_channels_last(create_model(config.model), device, config.precision) and config.channels_last
