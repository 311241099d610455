import pytest
import torch

from core.models.registry import count_parameters, create_model, list_models, model_names

REQUIRED = {"linear", "mlp", "cnn2", "cnn_basic", "lenet5", "cnn_base", "cnn_enhanced", "cnn_small",
            "resnet18", "fast"}


def test_registry_has_the_required_models_with_metadata():
    rows = {r["name"]: r for r in list_models()}
    assert REQUIRED <= set(rows)
    for row in rows.values():
        assert row["description"] and row["reference"] and row["params"] > 0 and row["macs"] > 0


@pytest.mark.parametrize("name", model_names())
def test_forward_and_backward(name):
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.randn(2, 1, 28, 28, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 10)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_cnn_small_is_under_100k_parameters():
    assert count_parameters(create_model("cnn_small")) <= 100_000


def test_parameter_counts_match_the_published_architectures():
    assert count_parameters(create_model("linear")) == 784 * 10 + 10
    # cnn_basic: conv 1->32 (3x3) + conv 32->64 (3x3) + fc 3136->128 + fc 128->10
    assert count_parameters(create_model("cnn_basic")) == (9 * 32 + 32) + (9 * 32 * 64 + 64) + (3136 * 128 + 128) \
        + (128 * 10 + 10)
    assert count_parameters(create_model("lenet5")) == 61706


def test_unknown_model_and_bad_kwargs_are_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        create_model("vgg")
    with pytest.raises(ValueError, match="bad arguments for model 'mlp'"):
        create_model("mlp", nonsense=1)


def test_cnn_enhanced_without_batch_norm_has_none_and_the_default_keeps_shipped_weights_loadable():
    from torch import nn

    plain = create_model("cnn_enhanced", batch_norm=False, dropout=0.0)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in plain.modules())
    assert not any(isinstance(m, nn.Dropout) and m.p > 0 for m in plain.modules())
    assert plain(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    enhanced = create_model("cnn_enhanced")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in enhanced.modules()) == 4
    # the default is the net the shipped cnn_enhanced runs were saved from: their weights still load, strictly
    from core.store.checkpoint import load_model
    from tests.conftest import REPO

    loaded = load_model(REPO / "checkpoints" / "pretrained" / "mnist-cnn_enhanced", "best")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in loaded.model.modules()) == 4


def test_the_fast_net_takes_one_depth_for_both_stages_or_one_per_stage():
    """Convs at 14x14 and at 7x7: `depth` 2 gives two each, [1, 2] one then two (the first stage is the costlier)."""
    from torch import nn

    def convs_per_stage(model) -> list[int]:
        counts = [0]
        for m in list(model.features)[1:]:  # after the stem
            if isinstance(m, nn.MaxPool2d):
                counts.append(0)
            elif isinstance(m, nn.Conv2d):
                counts[-1] += 1
        return counts[:2]

    assert convs_per_stage(create_model("fast")) == [1, 1]
    assert convs_per_stage(create_model("fast", depth=2)) == [2, 2]
    assert convs_per_stage(create_model("fast", depth=[1, 2])) == [1, 2]
    assert create_model("fast", depth=[2, 1])(torch.randn(2, 1, 28, 28)).shape == (2, 10)
