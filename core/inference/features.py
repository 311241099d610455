"""Inside the network: what every layer of a model computes for one input, and what its weights look like.

`feature_maps` runs one image through a model layer by layer and returns each layer's output in order
(conv and pooling layers as [C, H, W] maps, dense layers as vectors), then the logits and the softmax,
which equals the probabilities of core.inference.predictor.model_probs.

Thread safety: the app shares one model object between all sessions (st.cache_resource). A forward
hook registered on a shared module fires in *every* thread that runs it, and adding or removing one
while another session is in a forward pass changes the module under it. So nothing here registers a
hook or stores anything on the model: the forward pass is recomposed from the model's own submodules
(`stages`), each called in turn under inference mode, and the model is only read. A test checks that
the recomposed logits equal the model's own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from core.data.datasets import normalise, to_unit_float
from core.inference.saliency import colormap
from core.models.registry import FastNet
from core.store.checkpoint import LoadedModel

SIDE = 28
STARTERS = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
TOP_IMAGES = 9
TOP_UNITS = 8


@dataclass(frozen=True)
class Field:
    """Where an output position looks in the 28x28 input: row/col = index * jump + offset, `size` wide."""

    jump: int = 1
    offset: int = 0
    size: int = 1

    def through(self, kernel: int, stride: int, padding: int) -> Field:
        """The field after a conv or pooling layer with these (square) settings."""
        return Field(self.jump * stride, self.offset - padding * self.jump, self.size + (kernel - 1) * self.jump)

    def window(self, row: int, col: int) -> tuple[slice, slice]:
        """The input rows and columns (clipped to the image) that output position (row, col) sees."""
        def span(i: int) -> slice:
            start = i * self.jump + self.offset
            return slice(max(0, start), min(SIDE, start + self.size))
        return span(row), span(col)


@dataclass
class Stage:
    """One layer as a learner sees it: a conv, pooling or dense layer with its batch norm and ReLU folded in."""

    name: str
    modules: list[nn.Module]
    run: Callable[[torch.Tensor], torch.Tensor]
    field: Field | None = None  # for layers that keep a spatial layout
    own_filters: bool = True  # False for a residual block: its maps are a sum, not one conv's output

    @property
    def conv(self) -> nn.Conv2d | None:
        return next((m for m in self.modules if isinstance(m, nn.Conv2d)), None)


@dataclass
class Layer:
    """One layer's output for one input: maps [C, H, W] or a vector [N], float32."""

    name: str
    values: np.ndarray
    stage: Stage | None = field(default=None, repr=False)  # None for the softmax

    @property
    def kind(self) -> str:
        return "maps" if self.values.ndim == 3 else "vector"

    @property
    def shape_text(self) -> str:
        return " × ".join(str(s) for s in self.values.shape)


# --- the layer plan of each architecture -----------------------------------------------------


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0]
        stride = f", stride {module.stride[0]}" if module.stride[0] != 1 else ""
        return f"conv {module.in_channels}→{module.out_channels} ({k}x{k}{stride})"
    if isinstance(module, nn.Linear):
        return f"dense {module.in_features}→{module.out_features}"
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return "global average pool"
    k = _square(module.kernel_size)
    return f"{type(module).__name__.replace('2d', '').lower()} {k}x{k}"


def _square(value) -> int:
    return value[0] if isinstance(value, tuple) else int(value)


def _chain(modules: list[nn.Module]) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        for m in modules:
            x = m(x)
        return x
    return run


def _advance(field_: Field | None, modules: list[nn.Module]) -> Field | None:
    """The receptive field after the conv and pooling layers among `modules` (None once flattened)."""
    for m in modules:
        if isinstance(m, (nn.Flatten, nn.Linear, nn.AdaptiveAvgPool2d)):
            return None
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) and field_ is not None:
            field_ = field_.through(_square(m.kernel_size), _square(m.stride), _square(m.padding))
    return field_


def _sequential_stages(seq: nn.Sequential, field_: Field | None) -> tuple[list[Stage], Field | None]:
    """Group a Sequential: each conv/dense/pool layer with the batch norm, ReLU and dropout after it."""
    groups: list[list[nn.Module]] = []
    pending: list[nn.Module] = []  # a Flatten joins the layer after it
    for m in seq:
        if isinstance(m, STARTERS):
            groups.append([*pending, m])
            pending = []
        elif isinstance(m, nn.Flatten) or not groups:
            pending.append(m)
        else:
            groups[-1].append(m)
    if pending:
        groups[-1].extend(pending)
    stages = []
    for group in groups:
        head = next(m for m in group if isinstance(m, STARTERS))
        relu = " + ReLU" if any(isinstance(m, nn.ReLU) for m in group) else ""
        norm = " + batch norm" if any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in group) else ""
        field_ = _advance(field_, group)
        stages.append(Stage(f"{_describe(head)}{norm}{relu}", group, _chain(group), field_))
    return stages, field_


def stages(model: nn.Module) -> list[Stage]:
    """The model's layers in order, the last producing the logits; ValueError for an unknown structure."""
    if isinstance(model, nn.Sequential):
        return _sequential_stages(model, Field())[0]
    if isinstance(model, FastNet):
        body, _ = _sequential_stages(model.features, Field())
        pool = Stage("global max pool", [], lambda x: torch.amax(x, dim=(2, 3)))
        head = Stage(f"{_describe(model.head)} × {model.scale:g}", [model.head], lambda x: model.head(x) * model.scale)
        return [*body, pool, head]
    if type(model).__name__ == "ResNet":
        return _resnet_stages(model)
    raise ValueError(f"no layer plan for {type(model).__name__}")


def _resnet_stages(net: nn.Module) -> list[Stage]:
    stem = [net.conv1, net.bn1, net.relu, net.maxpool]
    field_ = _advance(Field(), stem)
    out = [Stage(f"{_describe(net.conv1)} + batch norm + ReLU", stem, _chain(stem), field_)]
    for i, block in enumerate([b for layer in (net.layer1, net.layer2, net.layer3, net.layer4) for b in layer], 1):
        field_ = _advance(field_, [block.conv1, block.conv2])
        out.append(Stage(f"residual block {i}: {_describe(block.conv1)}, {_describe(block.conv2)}",
                         [block.conv1, block.conv2], block, field_, own_filters=False))
    out.append(Stage("global average pool", [net.avgpool], lambda x: torch.flatten(net.avgpool(x), 1)))
    out.append(Stage(_describe(net.fc), [net.fc], net.fc))
    return out


# --- one input through every layer ----------------------------------------------------------


def _as_batch(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] (28x28, [N,28,28] or [N,1,28,28]) or uint8 -> float [N, 1, 28, 28]."""
    t = torch.as_tensor(np.asarray(x)) if not torch.is_tensor(x) else x
    t = to_unit_float(t) if t.dtype == torch.uint8 else t.float()
    return t.reshape(-1, 1, SIDE, SIDE)


def _flow(loaded: LoadedModel, x: torch.Tensor, plan: list[Stage]) -> Iterator[torch.Tensor]:
    """Each stage's output for the batch x (in [0, 1]), in order; call under inference mode."""
    h = normalise(x, loaded.mean, loaded.std)
    for stage in plan:
        h = stage.run(h)
        yield h


def _last(outputs: Iterator[torch.Tensor], empty: torch.Tensor | None = None) -> torch.Tensor:
    """The final output of a flow, dropping the earlier ones as it goes (a batch's maps are large); `empty` for a
    flow of no stages."""
    last = deque(outputs, maxlen=1)
    return last[0] if last else empty


def feature_maps(loaded: LoadedModel, x: np.ndarray | torch.Tensor) -> list[Layer]:
    """Every layer's output for one image x (28x28 in [0, 1]) in order, then the logits and the softmax.

    Maps come as [C, H, W], dense layers as vectors; a layer whose maps are 1x1 is given as a vector.
    The softmax averages with the mirror image when the run uses test-time flips, as the app does.
    """
    plan = stages(loaded.model)
    batch = _as_batch(x)[:1]
    layers = []
    with torch.inference_mode():
        for stage, out in zip(plan, _flow(loaded, batch, plan), strict=True):
            values = out[0].float().numpy().copy()  # a copy: a later in-place ReLU must not change it
            if values.ndim == 3 and values.shape[1:] == (1, 1):
                values = values[:, 0, 0]
            layers.append(Layer(stage.name, values, stage))
        probs = torch.softmax(out.float(), 1)
        if loaded.tta_flip:
            probs = (probs + torch.softmax(loaded.model(normalise(batch.flip(3), loaded.mean, loaded.std)), 1)) / 2
    layers[-1].name = f"logits ({layers[-1].name})"
    layers.append(Layer("softmax", probs[0].numpy()))
    return layers


def strongest_patch(layer: Layer, channel: int, image: np.ndarray) -> tuple[tuple[int, int], np.ndarray]:
    """The position of `channel`'s largest activation and the input patch (28x28 crop) that position sees."""
    maps = layer.values[channel]
    row, col = np.unravel_index(int(np.argmax(maps)), maps.shape)
    if layer.stage is None or layer.stage.field is None:
        raise ValueError(f"{layer.name} has no spatial layout")
    rows, cols = layer.stage.field.window(int(row), int(col))
    return (int(row), int(col)), np.asarray(image, np.float32).reshape(SIDE, SIDE)[rows, cols]


def filter_weights(layer: Layer, channel: int) -> np.ndarray | None:
    """The conv filter that made map `channel`: [C_in, k, k] float32, or None for a layer without a conv."""
    conv = layer.stage.conv if layer.stage is not None else None
    if conv is None or not layer.stage.own_filters:
        return None
    return conv.weight[channel].detach().float().numpy().copy()


# --- weights as pictures ---------------------------------------------------------------------


def first_layer_filters(model: nn.Module) -> tuple[np.ndarray, bool] | None:
    """The first conv layer's filters [C, k, k] (first input channel) and whether they are fixed whitening
    filters set from the data rather than learned; None for a model without convolutions."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        return None
    fixed = isinstance(model, FastNet) and model.whiten
    return conv.weight[:, 0].detach().float().numpy().copy(), fixed


def linear_templates(model: nn.Module) -> np.ndarray:
    """The linear model's ten weight templates, [10, 28, 28] (positive: ink there argues for the class)."""
    dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if len(dense) != 1 or dense[0].in_features != SIDE * SIDE:
        raise ValueError("weight templates exist only for a single dense layer on the 784 pixels")
    return dense[0].weight.detach().float().numpy().reshape(-1, SIDE, SIDE).copy()


def top_hidden_units(model: nn.Module, layers: list[Layer], k: int = TOP_UNITS) -> list[tuple[int, float, np.ndarray]]:
    """For an MLP: the k first-layer hidden units this input excites most, as (unit, activation, weights 28x28)."""
    first = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
    if first is None or first.in_features != SIDE * SIDE or not layers or layers[0].kind != "vector":
        raise ValueError("hidden-unit weights exist only for a dense first layer on the 784 pixels")
    activations = layers[0].values
    order = np.argsort(-activations, kind="stable")[:k]
    weights = first.weight.detach().float().numpy()
    return [(int(u), float(activations[u]), weights[u].reshape(SIDE, SIDE).copy()) for u in order]


def symmetric_limit(values: np.ndarray) -> float:
    """The largest absolute value (at least a tiny positive number): a diverging colour scale's range."""
    return max(float(np.abs(values).max(initial=0.0)), 1e-12)


# --- what a channel fires on -----------------------------------------------------------------


def last_conv_stage(model: nn.Module) -> int | None:
    """Index in `stages(model)` of the last layer holding a convolution, or None without convolutions."""
    found = [i for i, s in enumerate(stages(model)) if s.conv is not None]
    return found[-1] if found else None


def channel_responses(loaded: LoadedModel, images: np.ndarray | torch.Tensor, stage_index: int,
                      batch_size: int = 500) -> np.ndarray:
    """Each image's strongest response in each channel of stage `stage_index`: float32 [N, C], one pass."""
    plan = stages(loaded.model)[:stage_index + 1]
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            h = _last(_flow(loaded, _as_batch(images[start:start + batch_size]), plan))
            out.append(h.float().amax(dim=(2, 3)) if h.ndim == 4 else h.float())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def penultimate_features(loaded: LoadedModel, images: np.ndarray | torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """What the last layer (the logits) reads, for each image: float32 [N, D], one batched pass (for the linear
    model, the normalised pixels)."""
    plan = stages(loaded.model)[:-1]
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = _as_batch(images[start:start + batch_size])
            h = _last(_flow(loaded, x, plan), empty=normalise(x, loaded.mean, loaded.std))
            out.append(h.float().flatten(1))
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def top_images(responses: np.ndarray, channel: int, k: int = TOP_IMAGES) -> np.ndarray:
    """Indices of the k images whose response in `channel` is strongest, strongest first."""
    return np.argsort(-responses[:, channel], kind="stable")[:k]


# --- pictures ---------------------------------------------------------------------------------

_BLUE, _WHITE, _RED = np.array([33, 102, 172], np.float32), np.float32(247), np.array([178, 24, 43], np.float32)


def diverging(values: np.ndarray, limit: float | None = None) -> np.ndarray:
    """Values -> RGB uint8 on a blue-white-red scale centred on zero, ±`limit` (default: the largest |value|)."""
    v = np.asarray(values, np.float32)
    t = np.clip(v / (limit or symmetric_limit(v)), -1.0, 1.0)[..., None]
    rgb = np.where(t >= 0, _WHITE + (_RED - _WHITE) * t, _WHITE + (_BLUE - _WHITE) * -t)
    return np.rint(rgb).astype(np.uint8)


def mosaic(maps: np.ndarray, columns: int, tile: int = 56, gap: int = 2, fill: float = np.nan) -> np.ndarray:
    """Maps [C, H, W] as one [rows*(H'+gap), columns*(W'+gap)] picture, each map enlarged to about `tile`
    pixels with crisp pixels; the gaps hold `fill`. Values are kept, so one colour scale serves the layer."""
    maps = np.asarray(maps, np.float32)
    count, height, width = maps.shape
    factor = max(1, round(tile / height))
    big = maps.repeat(factor, axis=1).repeat(factor, axis=2)
    rows = -(-count // columns)
    h, w = height * factor + gap, width * factor + gap
    out = np.full((rows * h - gap, columns * w - gap), fill, np.float32)
    for i, m in enumerate(big):
        r, c = divmod(i, columns)
        out[r * h:r * h + h - gap, c * w:c * w + w - gap] = m
    return out


def heat_picture(values: np.ndarray, top: float) -> np.ndarray:
    """Activations (NaN = background) -> RGB uint8 on the inferno-like scale of 0..`top` (grey background)."""
    v = np.asarray(values, np.float32)
    rgb = colormap(np.nan_to_num(v, nan=0.0) / max(top, 1e-12))
    rgb[np.isnan(v)] = 200
    return rgb
