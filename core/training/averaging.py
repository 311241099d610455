"""Exponential moving average of a model's weights: a smoother model to validate, keep and test.

Averaging the weights over the last few hundred steps gives much of what lowering the learning rate gives,
at any moment of the run: early epochs of a long one-cycle run score far better with it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """An averaged copy of `model`; `update` after every optimiser step folds the new weights in.

    The decay ramps up as (1 + step) / (10 + step) until it reaches `decay`, so the first steps' random
    weights do not linger. Batch-norm running statistics are averaged like weights; counters are copied.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be between 0 and 1, got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._pairs_for: tuple[int, tuple] | None = None  # (id of the trained model, its tensors paired with ours)

    def _pairs(self, model: nn.Module) -> tuple[list, list, list, list]:
        """Our tensors and `model`'s, floats and counters apart (computed once: both update in place)."""
        if self._pairs_for is not None and self._pairs_for[0] == id(model):
            return self._pairs_for[1]
        mine, theirs = self.module.state_dict(), model.state_dict()
        floats = [k for k, v in mine.items() if v.is_floating_point()]
        others = [k for k, v in mine.items() if not v.is_floating_point()]
        pairs = ([mine[k] for k in floats], [theirs[k].detach() for k in floats],
                 [mine[k] for k in others], [theirs[k] for k in others])
        self._pairs_for = (id(model), pairs)
        return pairs

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Fold `model`'s current weights in, after optimiser step number `step` (0-based)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        averaged, current, counters, current_counters = self._pairs(model)
        torch._foreach_lerp_(averaged, current, 1.0 - decay)
        for mine, theirs in zip(counters, current_counters, strict=True):
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        device = next(self.module.parameters()).device
        self.module.load_state_dict({k: v.to(device) for k, v in state.items()})
