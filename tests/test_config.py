import math
from dataclasses import fields

import pytest

from core.training import config as config_module
from core.training.config import ConfigError, TrainConfig
from core.training.presets import PRESETS


def test_defaults_are_valid():
    assert TrainConfig().validate().model == "fast"


@pytest.mark.parametrize("field,value,message", [
    ("lr", -1, "lr must be > 0, got -1"),
    ("lr", 0, "lr must be > 0, got 0"),
    ("lr", math.nan, "lr must be a finite number"),
    ("epochs", 0, "epochs must be >= 1, got 0"),
    ("batch_size", 10**9, "batch_size must be <= 8192"),
    ("epochs", "ten", "epochs: expected a whole number, got 'ten'"),
    ("epochs", 2.5, "epochs: expected a whole number, got 2.5"),
    ("hflip", "maybe", "hflip: expected true or false"),
    ("optimizer", "lbfgs", "optimizer must be one of"),
    ("model", "vgg", "model must be one of"),
    ("label_smoothing", math.inf, "label_smoothing must be a finite number"),
    ("val_fraction", 0.9, "val_fraction must be <= 0.5"),
    ("dataset", "cifar", "dataset must be one of"),
])
def test_bad_values_are_refused_with_a_message_naming_the_field(field, value, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({field: value})
    assert any(message in m for m in err.value.messages), err.value.messages


def test_every_bad_field_is_reported_at_once_and_unknown_keys_too():
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({"lr": -1, "epochs": 0, "colour": "red"})
    assert len(err.value.messages) == 3


def test_round_trip_through_a_dict():
    config = TrainConfig(dataset="mnist", model="cnn_small", epochs=3, hflip=True, model_kwargs={})
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_every_preset_builds_a_valid_config(name, dataset):
    config = PRESETS[name].config(dataset)
    assert config.dataset == dataset and not config.problems()


def test_presets_mirror_the_tutorial_and_flip_only_clothes():
    tutorial = PRESETS["cnn_basic"].config("fashion-mnist")
    assert (tutorial.optimizer, tutorial.lr, tutorial.batch_size, tutorial.epochs) == ("adam", 1e-3, 64, 5)
    assert PRESETS["fast"].config("fashion-mnist").hflip and not PRESETS["fast"].config("mnist").hflip


def test_every_form_field_names_one_group_and_the_groups_come_in_order():
    groups = config_module.field_groups()
    assert list(groups) == list(config_module.GROUPS) and all(groups.values())
    grouped = [name for names in groups.values() for name in names]
    assert sorted(grouped) == sorted(f.name for f in fields(TrainConfig) if f.name not in ("dataset", "model"))
    assert groups[config_module.OPTIMISER][:4] == ["epochs", "batch_size", "optimizer", "lr"]
    assert "ema" in groups[config_module.OPTIMISER] and "model_kwargs" in groups[config_module.REGULARISATION]
