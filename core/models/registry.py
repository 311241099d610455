"""The model zoo: a registry of architectures by name, each built by `create_model(name, **kwargs)`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from core.models.whitening import whiten_conv

NUM_CLASSES = 10
WHITENED_STEM_WIDTH = 2 * 4 * 4  # the fast net's stem sees 4x4 grey patches


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: how to build it and what it is."""

    name: str
    build: Callable[..., nn.Module]
    description: str
    reference: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str, reference: str):
    """Decorator that adds a model-building function to the registry under `name`."""

    def wrap(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, build, description, reference)
        return build

    return wrap


def model_names() -> list[str]:
    """Registered model names, in registration order."""
    return list(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    """The registry entry for `name`, or a ValueError listing the known names."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a fresh, randomly initialised model; bad kwargs give a clear ValueError."""
    entry = get_entry(name)
    try:
        return entry.build(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad arguments for model {name!r}: {err}") from err


def count_parameters(model: nn.Module) -> int:
    """Number of parameters, learned or fixed (a whitening stem is set from the data, not trained)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, image_size: int = 28) -> int:
    """Multiply-accumulates of one forward pass on one image (conv and linear layers)."""
    total = 0

    def hook(module, _inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output[0].numel() * k
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, image_size, image_size))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total


@functools.cache
def model_stats(name: str) -> tuple[int, int]:
    """(parameters, multiply-adds per image) of `name` with default arguments, counted on the meta device
    (shapes only: no weights are allocated)."""
    with torch.device("meta"):
        model = create_model(name)
        return count_parameters(model), count_macs(model)


def list_models() -> list[dict]:
    """Every registered model: name, description, parameter count, MACs and the reference it reproduces."""
    rows = []
    for entry in _REGISTRY.values():
        params, macs = model_stats(entry.name)
        rows.append({"name": entry.name, "description": entry.description,
                     "params": params, "macs": macs, "reference": entry.reference})
    return rows


def conv_bn(cin: int, cout: int, kernel: int = 3) -> list[nn.Module]:
    """Conv (no bias) -> batch norm -> ReLU, 'same' padding."""
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register_model("linear", "Logistic regression on the 784 pixels: the baseline every model must beat.",
                "multinomial logistic regression")
def linear() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, NUM_CLASSES))


@register_model("mlp", "Two hidden layers (512, 256) with ReLU and dropout: the non-linear baseline.",
                "classic multilayer perceptron")
def mlp(hidden1: int = 512, hidden2: int = 256, dropout: float = 0.2) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, hidden1), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(hidden1, hidden2), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(hidden2, NUM_CLASSES),
    )


@register_model("cnn2", "Two 5x5 conv layers (16, 32) with max-pooling and one linear layer.",
                "the two-conv CNN of the common PyTorch MNIST tutorials")
def cnn2() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, NUM_CLASSES),
    )


@register_model("cnn_basic", "conv 32 (3x3) - pool - conv 64 (3x3) - pool - fc 128 - fc 10.",
                "the tutorial CNN most Fashion-MNIST projects train (Adam 1e-3, batch 64)")
def cnn_basic() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(inplace=True), nn.Linear(128, NUM_CLASSES),
    )


@register_model("lenet5", "LeNet-5 for 28x28 input: conv 6 (5x5, padded) - pool - conv 16 (5x5) - pool - "
                "120 - 84 - 10.",
                "LeCun et al. 1998, with ReLU and max-pooling")
def lenet5() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True),
        nn.Linear(120, 84), nn.ReLU(inplace=True), nn.Linear(84, NUM_CLASSES),
    )


@register_model("cnn_base", "conv 32 - pool - conv 64 - pool (no padding) - dense 256 - 10, ReLU throughout.",
                "the plain conv/ReLU/max-pool/dense net of the Keras-style Fashion-MNIST guides")
def cnn_base() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 5 * 5, 256), nn.ReLU(inplace=True), nn.Linear(256, NUM_CLASSES),
    )


@register_model("cnn_enhanced", "cnn_base made deeper and wider, with batch norm after every conv and dense "
                "layer and dropout: 2x(conv 32), pool, 2x(conv 64), pool, dense 512. batch_norm=false and "
                "dropout=0 give the same net without them (the base-vs-enhanced ablation).",
                "the 'enhanced CNN' (batch norm + dropout) of the Fashion-MNIST guides")
def cnn_enhanced(dropout: float = 0.25, batch_norm: bool = True) -> nn.Module:
    def conv(cin: int, cout: int) -> list[nn.Module]:
        return conv_bn(cin, cout) if batch_norm else [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]

    dense = [nn.Linear(64 * 7 * 7, 512, bias=False), nn.BatchNorm1d(512)] if batch_norm else \
        [nn.Linear(64 * 7 * 7, 512)]
    return nn.Sequential(
        *conv(1, 32), *conv(32, 32), nn.MaxPool2d(2), nn.Dropout(dropout),
        *conv(32, 64), *conv(64, 64), nn.MaxPool2d(2), nn.Dropout(dropout),
        nn.Flatten(), *dense, nn.ReLU(inplace=True),
        nn.Dropout(2 * dropout), nn.Linear(512, NUM_CLASSES),
    )


@register_model("cnn_small", "Under 100k parameters: four 3x3 conv/BN/ReLU layers (32-48-64-80), two "
                "pools, global average pooling, one linear layer.",
                "the 'CNN under 100k parameters' challenge")
def cnn_small() -> nn.Module:
    return nn.Sequential(
        *conv_bn(1, 32), *conv_bn(32, 48), nn.MaxPool2d(2),
        *conv_bn(48, 64), *conv_bn(64, 80), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(80, NUM_CLASSES),
    )


@register_model("resnet18", "torchvision's ResNet-18 for 1x28x28: 3x3 stem with stride 1, no early max-pool "
                "(11M parameters; slow on a CPU).", "He et al. 2016, CIFAR-style stem")
def resnet18() -> nn.Module:
    import torchvision  # here, not at the top: importing it takes seconds (it pulls in torch._dynamo)

    net = torchvision.models.resnet18(num_classes=NUM_CLASSES)
    net.conv1 = nn.Conv2d(1, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def stage_depths(depth: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Convs in the fast net's 14x14 and 7x7 stages: one number for both, or one per stage."""
    depths = (depth, depth) if isinstance(depth, int) else tuple(depth)
    if len(depths) != 2 or not all(isinstance(d, int) and d >= 1 for d in depths):
        raise ValueError(f"depth must be a whole number of at least 1, or two of them (one per stage), not {depth!r}")
    return depths


class FastNet(nn.Module):
    """A stride-2 stem straight to 14x14, conv/BN/ReLU stages pooling to 7x7 and 3x3, a max-pooled head.

    Shaped for CPU cost: no full-resolution feature map is ever stored (that memory traffic, not the
    multiply-adds, dominates small nets on a CPU); most multiply-adds sit at 14x14 and 7x7. With `whiten`
    the stem is not learned: `init_from_data` sets it to whiten 4x4 patches (core.whitening), which makes
    the first epochs markedly better.
    """

    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128), depth: int | tuple[int, int] = 1,
                 scale: float = 0.125, whiten: bool = False):
        super().__init__()
        w0, w1, w2 = widths
        d1, d2 = stage_depths(depth)
        stem = nn.Conv2d(1, w0, 4, stride=2, padding=1, bias=False)
        self.whiten = whiten
        if whiten:  # set from the data by init_from_data, then fixed
            if w0 != WHITENED_STEM_WIDTH:
                raise ValueError(f"whiten needs a stem width of {WHITENED_STEM_WIDTH} (two filters per value of a "
                                 f"4x4 patch), not {w0}; pass whiten=false for other widths")
            stem.weight.requires_grad_(False)
        layers = [stem, nn.BatchNorm2d(w0), nn.ReLU(inplace=True)]
        layers += conv_bn(w0, w1) + [m for _ in range(d1 - 1) for m in conv_bn(w1, w1)] + [nn.MaxPool2d(2)]
        layers += conv_bn(w1, w2) + [m for _ in range(d2 - 1) for m in conv_bn(w2, w2)] + [nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(w2, NUM_CLASSES, bias=False)
        self.scale = scale

    def init_from_data(self, images: torch.Tensor) -> None:
        """With `whiten`, set the stem to whiten the 4x4 patches of these normalised training images."""
        if self.whiten:
            whiten_conv(self.features[0], images)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.amax(x, dim=(2, 3))
        return self.head(x) * self.scale


@register_model("fast", "Our CPU-fast net: a patch-whitening stride-2 stem fitted to the data, conv/BN/ReLU stages "
                "32-64-128, global max-pool head. Best accuracy per second of CPU training; the default.",
                "mnist-studio (airbench-style)")
def fast(widths: tuple[int, int, int] | list[int] = (32, 64, 128), depth: int | list[int] = 1,
         whiten: bool = True) -> nn.Module:
    return FastNet(tuple(widths), depth, whiten=whiten)


@register_model("fast_wide", "The fast net wider and deeper (48-96-192, two convs per stage): "
                "the 'best accuracy' preset's model.", "mnist-studio (airbench-style)")
def fast_wide(widths: tuple[int, int, int] | list[int] = (48, 96, 192), depth: int | list[int] = 2,
              whiten: bool = False) -> nn.Module:
    return FastNet(tuple(widths), depth, whiten=whiten)
