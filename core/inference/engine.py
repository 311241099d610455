"""Batched inference shared by training (validation, test), evaluation and prediction."""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn

from core.data.datasets import normalise, to_unit_float


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU; an unavailable explicit choice is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("device 'mps' was asked for but Apple MPS is not available")
    return torch.device(name)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 instructions (AVX512-BF16, AMX), where bf16 autocast is faster than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def uses_bf16(device: torch.device, precision: str) -> bool:
    """'auto' means bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere."""
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return precision == "bf16" and device.type in ("cpu", "cuda")


def autocast_context(device: torch.device, precision: str):
    """bf16 autocast when `uses_bf16`, else a no-op context."""
    if uses_bf16(device, precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def uses_channels_last(model: nn.Module, device: torch.device, precision: str) -> bool:
    """Channels-last pays off for conv nets on CUDA or under bf16 (in fp32 on a CPU it was 4x slower here)."""
    is_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return is_conv and (device.type == "cuda" or uses_bf16(device, precision))


@torch.no_grad()
def predict_probs(model: nn.Module, images: torch.Tensor, mean: float, std: float, *,
                  batch_size: int = 1000, tta_flip: bool = False, precision: str = "fp32",
                  channels_last: bool = False) -> torch.Tensor:
    """Softmax probabilities float32 [N,10] (on the CPU) for uint8 images [N,28,28] or float [N,1,28,28] in 0..1.

    With `tta_flip`, averages the probabilities of each image and its left-right mirror. The one batched
    softmax loop of the project: training's validation and test, evaluation, prediction and latency use it.
    A model in training mode is switched to eval mode for the call; one already in eval mode (a shared,
    cached model) is only read.
    """
    was_training = model.training
    if was_training:
        model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size].to(device)
            x = to_unit_float(chunk) if chunk.dtype == torch.uint8 else chunk.float()
            x = normalise(x, mean, std)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_context(device, precision):
                probs = model(x).float().softmax(1)
                if tta_flip:
                    probs = (probs + model(x.flip(3)).float().softmax(1)) / 2
            out.append(probs.cpu())
    finally:
        if was_training:
            model.train()
    return torch.cat(out) if out else torch.empty(0, 10)
