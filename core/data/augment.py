"""Batched augmentation: every transform acts on a whole [B,1,H,W] batch at once, per-image random."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentSpec:
    """Which augmentations run; zero or False switches one off."""

    translate: int = 0  # max shift in pixels (pad and random crop)
    hflip: bool = False  # mirror left-right with p=0.5 (clothes, not digits)
    vflip: bool = False  # mirror top-bottom with p=0.5
    rotate: float = 0.0  # max rotation in degrees
    erase: float = 0.0  # probability of blanking one random rectangle

    @property
    def active(self) -> bool:
        return bool(self.translate or self.hflip or self.vflip or self.rotate or self.erase)


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def translate(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by up to `max_shift` pixels (zero padding), by gathering from a padded batch."""
    b, c, h, w = x.shape
    shifts = torch.randint(0, 2 * max_shift + 1, (2, b), generator=gen).to(x.device)
    padded = F.pad(x, (max_shift,) * 4)
    rows = (torch.arange(h, device=x.device)[None, :] + shifts[0][:, None])[:, None, :, None]
    cols = (torch.arange(w, device=x.device)[None, :] + shifts[1][:, None])[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def flip(x: torch.Tensor, dim: int, gen: torch.Generator) -> torch.Tensor:
    """Flip each image along `dim` with probability 0.5."""
    mask = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(mask, x.flip(dim), x)


def rotate(x: torch.Tensor, max_degrees: float, gen: torch.Generator) -> torch.Tensor:
    """Rotate each image by a random angle in [-max_degrees, max_degrees] (bilinear)."""
    angles = _uniform(x.shape[0], -max_degrees, max_degrees, gen) * (math.pi / 180)
    cos, sin = angles.cos(), angles.sin()
    zeros = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def erase(x: torch.Tensor, probability: float, gen: torch.Generator) -> torch.Tensor:
    """With `probability`, blank one random rectangle (2% to 25% of the area) of each image."""
    b, _, h, w = x.shape
    area = _uniform(b, 0.02, 0.25, gen) * h * w
    aspect = torch.exp(_uniform(b, math.log(0.3), math.log(3.3), gen))
    eh = (area * aspect).sqrt().clamp(1, h).long()
    ew = (area / aspect).sqrt().clamp(1, w).long()
    top = (torch.rand(b, generator=gen) * (h - eh + 1)).long()
    left = (torch.rand(b, generator=gen) * (w - ew + 1)).long()
    chosen = torch.rand(b, generator=gen) < probability
    r = torch.arange(h)[None, :]
    c = torch.arange(w)[None, :]
    in_rows = (r >= top[:, None]) & (r < (top + eh)[:, None])
    in_cols = (c >= left[:, None]) & (c < (left + ew)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & chosen[:, None, None]).to(x.device)
    return x.masked_fill(mask[:, None], 0.0)


def augment_batch(x: torch.Tensor, spec: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    """Apply the augmentations of `spec` to a 0..1 batch [B,1,H,W]; random numbers come from `gen`."""
    if spec.translate:
        x = translate(x, spec.translate, gen)
    if spec.hflip:
        x = flip(x, 3, gen)
    if spec.vflip:
        x = flip(x, 2, gen)
    if spec.rotate:
        x = rotate(x, spec.rotate, gen)
    if spec.erase:
        x = erase(x, spec.erase, gen)
    return x
