"""The robustness probe: ten small changes to an image (shifts, rotations, zooms, thinner and thicker strokes),
made on a whole batch at once, and how often a model keeps its answer under each over a test set.

One definition, PERTURBATIONS, built from the training augmentations' own batched transforms
(core.data.augment): the Predict page probes one drawing with `variants`, bench/model_table.py scores the
shipped runs over the 10,000 test images with `stability`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.data.augment import affine, shift, stroke_width
from core.data.datasets import to_unit_float
from core.inference.engine import predict_probs

SIDE = 28


def _shift(down: int, right: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: shift(x, torch.full((len(x),), down), torch.full((len(x),), right))


def _affine(degrees: float, zoom: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: affine(x, torch.full((len(x),), degrees), torch.full((len(x),), zoom))


def _strokes(thicker: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: stroke_width(x, torch.full((len(x),), thicker))


# name -> change of a 0..1 batch [B,1,28,28]; rotation and zoom are about MNIST's centre of mass (14, 14)
PERTURBATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "shift left 3 px": _shift(0, -3),
    "shift right 3 px": _shift(0, 3),
    "shift up 3 px": _shift(-3, 0),
    "shift down 3 px": _shift(3, 0),
    "rotate -15°": _affine(-15.0, 1.0),
    "rotate +15°": _affine(15.0, 1.0),
    "scale 0.8x": _affine(0.0, 0.8),
    "scale 1.2x": _affine(0.0, 1.2),
    "thinner strokes": _strokes(False),
    "thicker strokes": _strokes(True),
}


def perturb(x: torch.Tensor, name: str) -> torch.Tensor:
    """The perturbation `name` of a 0..1 batch [B,1,H,W], clipped to 0..1."""
    return PERTURBATIONS[name](x).clamp_(0.0, 1.0)


def variants(x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(name, 28x28 float32 in 0..1) for each perturbation of one 28x28 image in 0..1 ((1, 28, 28) is accepted)."""
    batch = torch.from_numpy(np.asarray(x, np.float32).reshape(1, 1, SIDE, SIDE).copy())
    return [(name, perturb(batch, name)[0, 0].numpy()) for name in PERTURBATIONS]


@dataclass
class Stability:
    """How a model's answers over a test set hold under each perturbation."""

    accuracy: float  # on the unchanged images
    kept: dict[str, float]  # perturbation -> share of images whose predicted class stays the same
    accuracy_under: dict[str, float]  # perturbation -> accuracy on the changed images

    @property
    def mean_kept(self) -> float:
        return float(np.mean(list(self.kept.values())))

    @property
    def worst(self) -> tuple[str, float]:
        """The perturbation that changes the most answers, and the share kept under it."""
        name = min(self.kept, key=self.kept.get)
        return name, self.kept[name]

    def rows(self) -> list[dict]:
        return [{"perturbation": n, "answer kept": self.kept[n], "accuracy": self.accuracy_under[n]}
                for n in self.kept]


def stability(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float, *,
              tta_flip: bool = False, batch_size: int = 1000, precision: str = "auto") -> Stability:
    """Predict uint8 images [N,28,28] unchanged and under every perturbation, `batch_size` images at a time.

    Precision "auto" (bf16 where the CPU has it natively) is what Predict uses for many images: 11 passes
    over the test set take minutes in fp32 on a loaded 2-core machine."""
    n = len(images)
    if n == 0:
        raise ValueError("stability needs at least one image")
    correct, kept = 0, dict.fromkeys(PERTURBATIONS, 0)
    right_under = dict.fromkeys(PERTURBATIONS, 0)

    def answers(x: torch.Tensor) -> torch.Tensor:
        return predict_probs(model, x, mean, std, batch_size=batch_size, tta_flip=tta_flip,
                             precision=precision).argmax(1)

    for start in range(0, n, batch_size):
        x = to_unit_float(images[start:start + batch_size])
        y = labels[start:start + batch_size]
        base = answers(x)
        correct += int((base == y).sum())
        for name in PERTURBATIONS:
            changed = answers(perturb(x, name))
            kept[name] += int((changed == base).sum())
            right_under[name] += int((changed == y).sum())
    return Stability(correct / n, {k: v / n for k, v in kept.items()}, {k: v / n for k, v in right_under.items()})
