"""core.saliency: Grad-CAM and occlusion point at the evidence, leave shared models untouched, overlay."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from core.inference import saliency
from core.models.registry import create_model
from core.store.checkpoint import LoadedModel, load_model
from tests.conftest import tiny_config
from tests.idx import synthetic_digits

DIGITS = [str(d) for d in range(10)]


def wrap(model: torch.nn.Module, arch: str) -> LoadedModel:
    return LoadedModel(model.eval(), arch, "mnist", DIGITS, 0.0, 1.0, False, Path("."))


def region_model() -> LoadedModel:
    """A linear model whose class 0 score is the ink inside rows/cols 4..9 (other classes score 0)."""
    model = create_model("linear")
    weight = torch.zeros(10, 28, 28)
    weight[0, 4:10, 4:10] = 1.0
    with torch.no_grad():
        model[1].weight.copy_(weight.reshape(10, -1))
        model[1].bias.zero_()
    return wrap(model, "linear")


@pytest.fixture(scope="module")
def square_net(tmp_path_factory, tiny_data_root) -> LoadedModel:
    """cnn2 trained on the tiny synthetic data, where class k is a bright 6x6 square at position k."""
    from core.store import runs
    from core.training import session as train

    run = tmp_path_factory.mktemp("saliency") / "cnn2"
    config = tiny_config(model="cnn2", epochs=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNIST_STUDIO_DATA", str(tiny_data_root))
        runs.RunWriter.create(run, config.to_dict(), state="running")
        train.run(config, run)
    return load_model(run)


def square_image(label: int) -> tuple[np.ndarray, tuple[int, int]]:
    """A tiny-data test image of `label` in [0, 1] and the centre (row, col) of its bright square."""
    images, labels = synthetic_digits(200, seed=2)
    i = int(np.flatnonzero(labels == label)[0])
    image = images[i].astype(np.float32) / 255.0
    rows, cols = np.nonzero(images[i] == 255)
    return image, (int(rows.mean()), int(cols.mean()))


def test_last_conv_is_found_only_in_conv_nets():
    assert saliency.last_conv(create_model("linear")) is None
    assert saliency.last_conv(create_model("mlp")) is None
    fast = create_model("fast")
    assert saliency.last_conv(fast) is [m for m in fast.modules() if isinstance(m, torch.nn.Conv2d)][-1]


def test_occlusion_lights_up_exactly_the_region_the_model_uses():
    image = np.zeros((28, 28), np.float32)
    image[5:9, 5:9] = 1.0  # ink the model counts
    image[18:24, 18:24] = 1.0  # ink it ignores
    heat = saliency.occlusion(region_model(), image, target=0)
    assert heat.shape == (28, 28) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert heat[5:9, 5:9].mean() > 0.5
    assert heat[16:, 16:].max() == 0.0  # covering what the model ignores changes nothing


def test_saliency_map_picks_occlusion_for_models_without_convolutions():
    image = np.zeros((28, 28), np.float32)
    image[5:9, 5:9] = 1.0
    method, heat = saliency.saliency_map(region_model(), image, 0)
    assert method == "occlusion" and heat.shape == (28, 28)
    with pytest.raises(ValueError, match="no convolution"):
        saliency.grad_cam(region_model(), image, 0)


@pytest.mark.parametrize("label", [0, 7])
def test_grad_cam_and_occlusion_point_at_the_square_on_a_trained_conv_net(square_net, label):
    image, (row, col) = square_image(label)
    probs = torch.softmax(square_net.model(torch.tensor(image)[None, None]), 1)
    assert int(probs.argmax()) == label  # the net learned the task
    method, cam = saliency.saliency_map(square_net, image, label)
    assert method == "Grad-CAM" and cam.shape == (28, 28) and 0 <= cam.min() and cam.max() == pytest.approx(1.0)
    for heat in (cam, saliency.occlusion(square_net, image, label)):
        peak = np.unravel_index(int(heat.argmax()), heat.shape)
        assert abs(peak[0] - row) <= 6 and abs(peak[1] - col) <= 6, (peak, (row, col))
        near = heat[max(0, row - 5):row + 6, max(0, col - 5):col + 6].mean()
        assert near > 2 * heat.mean()


def test_grad_cam_leaves_the_shared_model_untouched(square_net):
    image, _ = square_image(3)
    before = {k: v.clone() for k, v in square_net.model.state_dict().items()}
    saliency.grad_cam(square_net, image, 3)
    conv = saliency.last_conv(square_net.model)
    assert not conv._forward_hooks
    assert all(p.grad is None for p in square_net.model.parameters())
    assert not square_net.model.training
    assert all(torch.equal(before[k], v) for k, v in square_net.model.state_dict().items())


def test_grad_cam_ignores_other_threads_running_the_same_model(square_net):
    image, _ = square_image(5)
    alone = saliency.grad_cam(square_net, image, 5)
    stop = threading.Event()
    noise = torch.rand(1, 1, 28, 28)

    def busy():
        with torch.no_grad():
            while not stop.is_set():
                square_net.model(noise)

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        together = [saliency.grad_cam(square_net, image, 5) for _ in range(100)]
    finally:
        stop.set()
        worker.join()
    for heat in together:
        np.testing.assert_allclose(heat, alone, atol=1e-5)


def test_overlay_blends_the_heat_over_the_grey_input():
    x = np.zeros((28, 28), np.float32)
    x[10:18, 10:18] = 1.0
    plain = saliency.overlay(x, np.zeros((28, 28)), scale=4)
    assert plain.shape == (112, 112, 3) and plain.dtype == np.uint8
    assert (plain[..., 0] == plain[..., 1]).all() and plain.max() == 255 and plain[0, 0].tolist() == [0, 0, 0]
    heat = np.zeros((28, 28), np.float32)
    heat[:, :14] = 1.0
    hot = saliency.overlay(x, heat, scale=1)
    assert not (hot[:, :14, 0] == hot[:, :14, 2]).all()  # coloured where hot
    assert (hot[:, 14:] == saliency.overlay(x, np.zeros((28, 28)), scale=1)[:, 14:]).all()
    np.testing.assert_array_equal(saliency.colormap(np.array([0.0, 1.0])), [[0, 0, 4], [252, 255, 164]])
