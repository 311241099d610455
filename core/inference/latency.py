"""Inference latency of one model for one image on this machine, measured on demand (not at page load)."""

from __future__ import annotations

import time

import numpy as np
import torch

from core.inference.engine import predict_probs
from core.store.checkpoint import LoadedModel

DEFAULT_REPEATS = 50
DEFAULT_WARMUP = 5


def sample_image(seed: int = 0) -> torch.Tensor:
    """A fixed uint8 image [1, 28, 28] to time with (the content does not change the cost)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8, generator=gen)


def measure_latency(loaded: LoadedModel, repeats: int = DEFAULT_REPEATS, warmup: int = DEFAULT_WARMUP) -> dict:
    """Milliseconds to classify one image, the way the app does it (normalise, forward, softmax, flip TTA if set).

    Runs `warmup` untimed calls first (lazy initialisation, caches), then `repeats` timed ones; returns
    {"p50_ms", "p95_ms", "repeats"}. The model is only read: no gradients, its train/eval mode is restored.
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    image = sample_image()

    def once() -> None:
        predict_probs(loaded.model, image, loaded.mean, loaded.std, batch_size=1, tta_flip=loaded.tta_flip)

    for _ in range(warmup):
        once()
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        once()
        times[i] = time.perf_counter() - start
    p50, p95 = np.percentile(times * 1000.0, [50, 95])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "repeats": repeats}
