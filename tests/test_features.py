"""core.inference.features: every layer of every registered model for one input, weights as pictures."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from core.inference import features
from core.inference.predictor import model_probs
from core.models.registry import create_model, model_names
from core.store.checkpoint import LoadedModel

DIGITS = [str(d) for d in range(10)]


def wrap(model: torch.nn.Module, arch: str, tta_flip: bool = False) -> LoadedModel:
    return LoadedModel(model.eval(), arch, "mnist", DIGITS, 0.13, 0.31, tta_flip, Path("."))


def random_model(name: str) -> LoadedModel:
    torch.manual_seed(0)
    model = create_model(name)
    with torch.no_grad():  # batch norms with non-trivial statistics, so eval mode matters
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return wrap(model, name)


def an_image(seed: int = 0) -> np.ndarray:
    image = np.zeros((28, 28), np.float32)
    image[6:22, 12:16] = np.random.default_rng(seed).uniform(0.5, 1.0, (16, 4))
    return image


@pytest.mark.parametrize("name", model_names())
def test_every_layer_in_order_ends_in_the_apps_probabilities(name):
    loaded = random_model(name)
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    x = an_image()
    layers = features.feature_maps(loaded, x)
    *body, logits, softmax = layers
    assert softmax.name == "softmax" and logits.name.startswith("logits")
    with torch.no_grad():
        own_logits = loaded.model(torch.tensor((x - 0.13) / 0.31).reshape(1, 1, 28, 28))[0].numpy()
    np.testing.assert_allclose(logits.values, own_logits, rtol=1e-4, atol=1e-5)
    probs = model_probs(loaded, torch.tensor(x).reshape(1, 1, 28, 28))[0]
    np.testing.assert_allclose(softmax.values, probs, atol=1e-6)
    assert softmax.values.sum() == pytest.approx(1.0, abs=1e-5)
    read_by_logits = body[-1].values.reshape(-1) if body else ((x - 0.13) / 0.31).reshape(-1)  # linear: pixels
    np.testing.assert_allclose(features.penultimate_features(loaded, x[None])[0], read_by_logits, rtol=1e-4,
                               atol=1e-5)
    for layer in layers:
        assert layer.values.dtype == np.float32 and layer.values.ndim in (1, 3)
        assert np.isfinite(layer.values).all()
    maps = [layer for layer in body if layer.kind == "maps"]
    convolutional = any(isinstance(m, torch.nn.Conv2d) for m in loaded.model.modules())
    assert bool(maps) == convolutional
    for layer in maps:  # channels first, spatial layout and a receptive field inside the picture
        channels, height, width = layer.values.shape
        assert 1 < height <= 28 and height == width and channels >= 1
        assert layer.stage.field is not None and 1 < layer.stage.field.size
    # only read: no gradient, no hook left behind, weights and mode unchanged
    assert all(p.grad is None for p in loaded.model.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in loaded.model.modules())
    assert not loaded.model.training
    assert all(torch.equal(before[k], v) for k, v in loaded.model.state_dict().items())


def test_the_softmax_averages_the_mirror_image_when_the_run_does():
    loaded = wrap(random_model("cnn2").model, "cnn2", tta_flip=True)
    x = an_image()
    x[:, 20:] = 0.7  # not left-right symmetric
    probs = model_probs(loaded, torch.tensor(x).reshape(1, 1, 28, 28))[0]
    np.testing.assert_allclose(features.feature_maps(loaded, x)[-1].values, probs, atol=1e-6)


def test_a_layer_keeps_its_own_values_although_the_next_relu_works_in_place():
    loaded = random_model("cnn2")
    layers = features.feature_maps(loaded, an_image())
    conv = layers[0].stage.modules[0]
    with torch.no_grad():
        raw = conv(torch.tensor((an_image() - 0.13) / 0.31).reshape(1, 1, 28, 28))[0].numpy()
    np.testing.assert_allclose(layers[0].values, np.maximum(raw, 0), atol=1e-5)  # conv + ReLU
    assert layers[0].name == "conv 1→16 (5x5) + ReLU" and layers[1].name == "maxpool 2x2"


@pytest.mark.parametrize("name", ["cnn2", "fast"])
def test_concurrent_sessions_on_one_shared_model_get_their_own_layers(name):
    loaded = random_model(name)
    inputs = [an_image(seed) for seed in range(4)]
    alone = [features.feature_maps(loaded, x) for x in inputs]
    errors: list[BaseException] = []

    def session(i: int) -> None:
        try:
            for _ in range(15):
                got = features.feature_maps(loaded, inputs[i])
                for a, b in zip(alone[i], got, strict=True):
                    np.testing.assert_allclose(a.values, b.values, atol=1e-5)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_the_templates_of_a_hand_set_linear_model():
    model = create_model("linear")
    weight = torch.zeros(10, 28, 28)
    for k in range(10):
        weight[k, k:k + 3, 5:9] = 1.0 + k
        weight[k, 20, 20] = -2.0
    with torch.no_grad():
        model[1].weight.copy_(weight.reshape(10, -1))
    templates = features.linear_templates(model)
    assert templates.shape == (10, 28, 28)
    np.testing.assert_array_equal(templates, weight.numpy())
    assert features.symmetric_limit(templates) == 10.0
    with pytest.raises(ValueError, match="single dense layer"):
        features.linear_templates(create_model("mlp"))


def test_the_mlp_hidden_units_this_input_excites_most():
    model = create_model("mlp", hidden1=16, hidden2=8)
    with torch.no_grad():
        first = model[1]
        first.weight.zero_()
        first.bias.zero_()
        first.weight.view(16, 28, 28)[5, 6:22, 12:16] = 1.0  # unit 5 looks for the stroke the image has
        first.weight.view(16, 28, 28)[9, 6:22, 12:16] = 0.5
        first.weight.view(16, 28, 28)[2, 0:4, 0:4] = 1.0  # unit 2 looks where there is no ink
    loaded = LoadedModel(model.eval(), "mlp", "mnist", DIGITS, 0.0, 1.0, False, Path("."))
    layers = features.feature_maps(loaded, an_image())
    top = features.top_hidden_units(model, layers, k=3)
    assert [unit for unit, _, _ in top[:2]] == [5, 9]
    assert top[0][1] > top[1][1] > 0 and top[0][2].shape == (28, 28)
    np.testing.assert_array_equal(top[0][2], first.weight.detach().view(16, 28, 28)[5].numpy())


def test_the_strongest_map_position_and_the_input_patch_it_sees():
    model = create_model("cnn2")
    with torch.no_grad():
        conv = model[0]
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[3, 0, 2, 2] = 1.0  # channel 3 copies the input
    loaded = LoadedModel(model.eval(), "cnn2", "mnist", DIGITS, 0.0, 1.0, False, Path("."))
    image = np.zeros((28, 28), np.float32)
    image[10, 20] = 1.0
    layers = features.feature_maps(loaded, image)
    (row, col), patch = features.strongest_patch(layers[0], 3, image)
    assert (row, col) == (10, 20) and patch.shape == (5, 5) and patch[2, 2] == 1.0
    (row, col), patch = features.strongest_patch(layers[1], 3, image)  # after 2x2 max-pooling
    assert (row, col) == (5, 10) and patch.shape == (6, 6) and patch.sum() == 1.0
    weights = features.filter_weights(layers[0], 3)
    assert weights.shape == (1, 5, 5) and weights[0, 2, 2] == 1.0
    assert features.filter_weights(layers[1], 3) is None  # pooling has no filter


def test_first_layer_filters_say_when_they_are_fixed_whitening_filters():
    filters, fixed = features.first_layer_filters(create_model("fast"))
    assert filters.shape == (32, 4, 4) and fixed
    filters, fixed = features.first_layer_filters(create_model("cnn2"))
    assert filters.shape == (16, 5, 5) and not fixed
    assert features.first_layer_filters(create_model("linear")) is None


def test_the_images_a_last_conv_channel_fires_on_most():
    loaded = random_model("cnn2")
    stage = features.last_conv_stage(loaded.model)
    assert stage == 2 and features.last_conv_stage(create_model("mlp")) is None
    rng = np.random.default_rng(1)
    images = (rng.random((30, 28, 28)) * 255).astype(np.uint8)
    responses = features.channel_responses(loaded, images, stage, batch_size=7)
    assert responses.shape == (30, 32)
    for i in (0, 13, 29):  # one batched pass gives what each image alone gives
        alone = features.feature_maps(loaded, images[i].astype(np.float32) / 255)[stage].values
        np.testing.assert_allclose(responses[i], alone.max(axis=(1, 2)), rtol=1e-4, atol=1e-5)
    top = features.top_images(responses, 4, k=9)
    assert len(top) == 9 and list(responses[top, 4]) == sorted(responses[:, 4], reverse=True)[:9]


def test_a_residual_block_has_no_single_filter_of_its_own():
    loaded = random_model("resnet18")
    layers = features.feature_maps(loaded, an_image())
    assert features.filter_weights(layers[0], 0).shape == (1, 3, 3)  # the stem conv
    assert layers[1].name.startswith("residual block 1") and features.filter_weights(layers[1], 0) is None
