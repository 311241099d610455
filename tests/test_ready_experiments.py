"""Ready-made experiments: each builds a valid spec, every effect has an error bar, quick variants are small."""

import pytest

from core.experiments.ready import QUICK_IMAGE_BUDGET, READY, quick_cost, ready_spec
from core.experiments.spec import ExperimentSpec

CASES = [(key, quick) for key in READY for quick in (True, False)]


@pytest.mark.parametrize(("key", "quick"), CASES)
def test_each_ready_made_builds_a_valid_spec_with_repeats(key, quick):
    spec = ready_spec(key, quick=quick, name=f"{key}-test")
    assert isinstance(spec, ExperimentSpec) and spec.sampler == "grid" and spec.name == f"{key}-test"
    assert spec.validate() is spec  # validating again changes nothing
    assert ExperimentSpec.from_dict(spec.to_dict()).to_dict() == spec.to_dict()
    assert spec.repeats >= 2, "every configuration is repeated (seeds or folds) so each effect has an error bar"
    assert 2 <= spec.n_trials() <= 200
    for name, values in spec.grid.items():  # the reference value is the base's, so effects read "turning it on"
        assert spec.base_value(name) in values and len(values) >= 2, name
    assert ("quick" in spec.title) == quick


@pytest.mark.parametrize("key", list(READY))
def test_quick_variants_are_small_and_full_ones_use_all_the_data(key):
    quick, full = ready_spec(key, quick=True, name="q"), ready_spec(key, quick=False, name="f")
    assert quick_cost(quick) <= QUICK_IMAGE_BUDGET
    assert quick.base["subset"] and quick.base["epochs"] <= 2
    assert full.base["subset"] == 0 and full.base["epochs"] >= 5
    assert quick_cost(full) > 10 * quick_cost(quick)


def test_the_batch_norm_ablation_crosses_batch_norm_dropout_and_vertical_flips_on_the_enhanced_cnn():
    spec = ready_spec("batchnorm", dataset="fashion-mnist", quick=True, name="bn")
    assert spec.base["model"] == "cnn_enhanced"
    assert spec.grid == {"model.batch_norm": [False, True], "model.dropout": [0.0, 0.25], "vflip": [False, True]}
    assert spec.n_trials() == 8 * spec.repeats
    first_four = [p["model.batch_norm"] for p in spec.grid_points()[:2 * spec.repeats]]
    assert first_four == [False] * spec.repeats + [True] * spec.repeats  # batch norm's effect shows first
    config = spec.trial_config({"model.batch_norm": True, "model.dropout": 0.25, "vflip": True})
    assert config.model_kwargs == {"batch_norm": True, "dropout": 0.25} and config.vflip


def test_learning_rate_by_batch_size_cross_validates_the_under_100k_cnn_in_full():
    full = ready_spec("lr_batch", quick=False, name="lrb")
    assert full.base["model"] == "cnn_small" and full.base["folds"] == 5 and full.repeat_field() == "fold"
    assert set(full.grid) == {"lr", "batch_size"} and full.n_trials() == 3 * 3 * 5


def test_unknown_ready_made_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown ready-made experiment 'nope'"):
        ready_spec("nope")
