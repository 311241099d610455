"""Tests for core.latency with real models (a registered one, and one with a known minimum cost)."""

import time
from pathlib import Path

import pytest
import torch
from torch import nn

from core.inference.latency import measure_latency
from core.models.registry import create_model
from core.store.checkpoint import LoadedModel


def loaded(model: nn.Module, tta_flip: bool = False) -> LoadedModel:
    return LoadedModel(model, "test", "mnist", [str(i) for i in range(10)], 0.13, 0.31, tta_flip, Path("."))


class Sleepy(nn.Module):
    """A linear classifier that also sleeps `seconds` per forward call, and counts its calls."""

    def __init__(self, seconds: float):
        super().__init__()
        self.fc = nn.Linear(784, 10)
        self.seconds, self.calls = seconds, 0

    def forward(self, x):
        self.calls += 1
        time.sleep(self.seconds)
        return self.fc(x.flatten(1))


def test_measures_a_registered_model_and_leaves_it_unchanged():
    model = create_model("cnn2").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = measure_latency(loaded(model), repeats=5)
    assert set(result) == {"p50_ms", "p95_ms", "repeats"} and result["repeats"] == 5
    assert 0 < result["p50_ms"] <= result["p95_ms"]
    assert model.training  # mode restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_latency_reflects_the_cost_of_a_forward_pass_and_counts_warmup_and_tta():
    model = Sleepy(0.004)
    result = measure_latency(loaded(model), repeats=4, warmup=2)
    assert result["p50_ms"] >= 4.0
    assert model.calls == 6  # 2 warm-up + 4 timed, one image each
    model.calls = 0
    flipped = measure_latency(loaded(model, tta_flip=True), repeats=4, warmup=0)
    assert model.calls == 8  # flip averaging runs the model twice per image
    assert flipped["p50_ms"] >= 8.0


@pytest.mark.parametrize("kwargs", [{"repeats": 0}, {"repeats": 2.5}, {"warmup": -1}])
def test_bad_counts_are_refused(kwargs):
    with pytest.raises(ValueError, match="integer"):
        measure_latency(loaded(create_model("linear")), **kwargs)
