import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.data.datasets import normalise, to_unit_float
from core.models.registry import create_model
from core.models.whitening import patch_covariance, whiten_conv
from core.store import runs
from core.store.checkpoint import load_checkpoint
from core.training.loop import DATA_INIT_IMAGES, prepare_split
from core.training.session import run
from tests.conftest import tiny_config


def _correlated_images(n: int = 400) -> torch.Tensor:
    """Smooth random images (neighbouring pixels strongly correlated, as in real pictures) plus some grain."""
    torch.manual_seed(0)
    smooth = F.avg_pool2d(torch.randn(n, 1, 28, 28), 5, stride=1, padding=2) * 3
    return smooth + 0.3 * torch.randn(n, 1, 28, 28)


def test_the_whitened_conv_outputs_decorrelated_unit_variance_channels():
    images = _correlated_images()
    conv = nn.Conv2d(1, 32, 4, stride=2, padding=1, bias=False)
    raw = patch_covariance(images, conv)
    correlation = raw / torch.outer(raw.diag(), raw.diag()).sqrt()
    assert (correlation - torch.eye(16, dtype=torch.double)).max() > 0.5  # neighbouring raw values: correlated
    whiten_conv(conv, images)
    with torch.no_grad():
        out = conv(images)
    channels = out[:, :16].permute(1, 0, 2, 3).reshape(16, -1).double()
    covariance = channels @ channels.T / channels.shape[1]
    assert torch.allclose(covariance, torch.eye(16, dtype=torch.double), atol=0.02)
    assert torch.equal(conv.weight[16:], -conv.weight[:16])  # each filter twice, once per sign


def test_a_conv_with_the_wrong_number_of_channels_is_refused():
    conv = nn.Conv2d(1, 24, 4, stride=2, padding=1, bias=False)
    with pytest.raises(ValueError, match="32 output channels"):
        whiten_conv(conv, _correlated_images(20))


def test_the_fast_net_refuses_a_stem_it_cannot_whiten():
    with pytest.raises(ValueError, match="whiten"):
        create_model("fast", widths=[48, 64, 128])
    assert create_model("fast", widths=[48, 64, 128], whiten=False) is not None


def test_a_run_whitens_the_stem_from_its_training_images_and_keeps_it_fixed(store):
    config = tiny_config(model="fast", epochs=2)
    path = store / "whitened"
    runs.RunWriter.create(path, config.to_dict(), state="running")
    state, _ = run(config, path)
    assert state == "completed"
    split = prepare_split(config, torch.device("cpu"))
    torch.manual_seed(config.seed)
    start = create_model("fast")  # the run's initial weights (same seed)
    expected = start.features[0]
    sample = split.images[split.train_idx[:DATA_INIT_IMAGES]]
    whiten_conv(expected, normalise(to_unit_float(sample), split.mean, split.std))
    for name in ("best.pt", "last.pt"):  # two epochs of training later, the stem is still the whitening
        stem = load_checkpoint(path / name)["state_dict"]["features.0.weight"]
        assert torch.allclose(stem, expected.weight)
    later = load_checkpoint(path / "last.pt")["state_dict"]["features.3.weight"]
    assert not torch.allclose(later, start.features[3].weight)  # the rest did train


def test_the_wide_net_can_whiten_a_32_wide_stem_on_request():
    assert create_model("fast_wide").features[0].weight.requires_grad  # learned by default
    whitened = create_model("fast_wide", widths=[32, 96, 192], whiten=True)
    assert not whitened.features[0].weight.requires_grad
