"""Why a model chose a class: Grad-CAM for conv nets, occlusion for any model, and an overlay image.

Both return a 28x28 float32 heat map in [0, 1] (1 = the pixels that most support the class).

- Grad-CAM (Selvaraju et al. 2017) on the last conv layer, in its element-wise form (HiResCAM,
  Draelos & Carin 2020): each feature map times the gradient of the class score at each position,
  summed over maps, ReLU, upsampled bilinearly to 28x28. For nets whose head averages the maps this
  is exactly Grad-CAM; for flatten + linear heads (cnn2, LeNet) Grad-CAM's per-map averaged weights
  can cancel out (an all-zero map on models trained here), while this form stays faithful: it is
  each position's first-order contribution to the score.
- Occlusion (Zeiler & Fergus 2014): slide a black patch over the input (black is the datasets'
  background) and record how much the class probability drops; all positions in one batch.

Models are only read: no weights or gradients are stored on them, and the temporary forward hook
that Grad-CAM needs records activations of its own thread only, so a model cached and shared by
several sessions of the app stays safe.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data.datasets import normalise
from core.inference.predictor import model_probs, threads_for
from core.store.checkpoint import LoadedModel

SIDE = 28
OCCLUSION_PATCH = 6  # pixels; about a stroke segment of an MNIST digit
OCCLUSION_STRIDE = 2

# An "inferno"-like colour map: dark purple (low) through red and orange to pale yellow (high).
_CMAP_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_CMAP_RGB = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)


def last_conv(model: nn.Module) -> nn.Conv2d | None:
    """The last nn.Conv2d in module order, or None for a model without convolutions."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def _as_input(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A 28x28 (or 1x28x28, 1x1x28x28) image in [0, 1] -> float tensor [1, 1, 28, 28]."""
    return torch.as_tensor(np.asarray(x, np.float32)).reshape(1, 1, SIDE, SIDE)


def _unit(heat: np.ndarray) -> np.ndarray:
    """Clip negatives and scale the maximum to 1 (an all-zero map stays zero); float32."""
    heat = np.clip(np.nan_to_num(heat.astype(np.float32)), 0.0, None)
    top = float(heat.max())
    return heat / top if top > 0 else heat


def grad_cam(loaded: LoadedModel, x: np.ndarray | torch.Tensor, target: int) -> np.ndarray:
    """Grad-CAM heat map of class `target` for image x (28x28 in [0, 1]); ValueError without a conv layer."""
    conv = last_conv(loaded.model)
    if conv is None:
        raise ValueError(f"{loaded.arch} has no convolution layer; use occlusion")
    owner = threading.get_ident()
    captured: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        if threading.get_ident() == owner:  # another session may run the same model meanwhile
            captured.append(output)

    handle = conv.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = loaded.model(normalise(_as_input(x), loaded.mean, loaded.std))
            activation = captured[-1]
            (grads,) = torch.autograd.grad(logits[0, target], activation)
    finally:
        handle.remove()
    cam = F.relu((grads * activation).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    return _unit(cam[0, 0].numpy())


def occlusion(loaded: LoadedModel, x: np.ndarray | torch.Tensor, target: int,
              patch: int = OCCLUSION_PATCH, stride: int = OCCLUSION_STRIDE) -> np.ndarray:
    """Occlusion heat map of class `target`: the mean drop in its probability when each pixel is covered."""
    image = _as_input(x)[0, 0]
    starts = list(range(0, SIDE - patch + 1, stride))
    if starts[-1] != SIDE - patch:
        starts.append(SIDE - patch)
    boxes = [(r, c) for r in starts for c in starts]
    batch = image.repeat(len(boxes) + 1, 1, 1)
    for i, (r, c) in enumerate(boxes, start=1):
        batch[i, r:r + patch, c:c + patch] = 0.0
    probs = model_probs(loaded, batch[:, None])[:, target]
    drop_sum = np.zeros((SIDE, SIDE), np.float32)
    count = np.zeros((SIDE, SIDE), np.float32)
    for (r, c), p in zip(boxes, probs[1:], strict=True):
        drop_sum[r:r + patch, c:c + patch] += probs[0] - p
        count[r:r + patch, c:c + patch] += 1
    return _unit(drop_sum / np.maximum(count, 1))


def saliency_map(loaded: LoadedModel, x: np.ndarray | torch.Tensor, target: int) -> tuple[str, np.ndarray]:
    """("Grad-CAM", map) for conv nets, ("occlusion", map) for the others or when Grad-CAM is all zero.

    On one intra-op thread: one image is too little work to share between threads (see threads_for).
    """
    with threads_for(1):
        if last_conv(loaded.model) is not None:
            heat = grad_cam(loaded, x, target)
            if heat.any():
                return "Grad-CAM", heat
        return "occlusion", occlusion(loaded, x, target)


def colormap(heat: np.ndarray) -> np.ndarray:
    """Heat values in [0, 1] -> RGB uint8 with the inferno-like map."""
    h = np.clip(heat, 0.0, 1.0)
    rgb = np.stack([np.interp(h, _CMAP_STOPS, _CMAP_RGB[:, i]) for i in range(3)], axis=-1)
    return np.rint(rgb).astype(np.uint8)


def overlay(x: np.ndarray, heat: np.ndarray, scale: int = 6, alpha: float = 0.65) -> np.ndarray:
    """The grey input with the heat map blended over it (more where hotter), upscaled: RGB uint8.

    x and heat are 28x28 in [0, 1]; the result is (28*scale, 28*scale, 3), blocky on purpose so
    each input pixel stays visible.
    """
    grey = np.clip(np.asarray(x, np.float32).reshape(SIDE, SIDE), 0, 1)[..., None] * 255.0
    h = np.clip(np.asarray(heat, np.float32).reshape(SIDE, SIDE), 0, 1)[..., None]
    mixed = grey * (1 - alpha * h) + colormap(h[..., 0]).astype(np.float32) * alpha * h
    image = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return image.repeat(scale, axis=0).repeat(scale, axis=1)
