import json

import pytest
import torch
from torch import nn

from core.store import runs
from core.store.checkpoint import load_checkpoint
from core.training.averaging import WeightAverage
from core.training.session import run
from tests.conftest import tiny_config


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


def test_update_moves_the_average_a_decay_step_towards_the_weights():
    net = _net()
    average = WeightAverage(net, decay=0.9)
    before = average.module[0].weight.clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    net.train()(torch.randn(8, 4))  # batch norm statistics and its counter move
    average.update(net, step=1000)  # late in a run: the full decay applies
    assert torch.allclose(average.module[0].weight, 0.9 * before + 0.1 * net[0].weight)
    assert torch.allclose(average.module[1].running_mean, 0.1 * net[1].running_mean)
    assert average.module[1].num_batches_tracked == net[1].num_batches_tracked == 1


def test_the_first_updates_follow_the_weights_closely():
    net = _net()
    average = WeightAverage(net, decay=0.999)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    average.update(net, step=0)  # decay (1 + 0) / (10 + 0) = 0.1: the average jumps most of the way
    assert torch.allclose(average.module[0].weight, net[0].weight - 0.1)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_a_decay_outside_zero_to_one_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_net(), decay)


def test_a_run_with_averaging_keeps_and_tests_the_averaged_weights(store):
    config = tiny_config(epochs=2, ema=0.9, val_fraction=0.0)  # no validation: the last epoch is the best
    path = store / "ema"
    runs.RunWriter.create(path, config.to_dict(), state="running")
    state, summary = run(config, path)
    assert state == "completed" and summary["test_acc"] > 0.5
    best, last = load_checkpoint(path / "best.pt"), load_checkpoint(path / "last.pt")
    assert set(best["state_dict"]) == set(last["average"])
    assert all(torch.equal(best["state_dict"][k], last["average"][k]) for k in best["state_dict"])
    assert any(not torch.equal(best["state_dict"][k], last["state_dict"][k]) for k in best["state_dict"]
               if best["state_dict"][k].is_floating_point())  # the average is not the raw weights


def test_resume_with_averaging_matches_an_uninterrupted_run(store):
    config = tiny_config(epochs=2, ema=0.9)
    whole = store / "whole"
    runs.RunWriter.create(whole, config.to_dict(), state="running")
    run(config, whole)
    part = store / "part"
    first = tiny_config(epochs=1, ema=0.9)
    runs.RunWriter.create(part, first.to_dict(), state="running")
    run(first, part)  # one epoch, then
    (part / "config.json").write_text(json.dumps(config.to_dict()))
    run(config, part, resume=True)  # the rest, restoring the average from last.pt
    accs = [[e["val_acc"] for e in runs.read_metrics(p)[0] if e["type"] == "epoch"] for p in (whole, part)]
    assert accs[0] == accs[1] and len(accs[0]) == 2
