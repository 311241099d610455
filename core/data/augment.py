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
    scale: float = 0.0  # max zoom as a fraction: 0.2 draws factors in 0.8x..1.2x
    stroke: float = 0.0  # probability of thinner or thicker strokes (half a pixel each side, either way)

    @property
    def active(self) -> bool:
        return bool(self.translate or self.hflip or self.vflip or self.rotate or self.erase or self.scale
                    or self.stroke)


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def translate(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by up to `max_shift` pixels each way (zero padding)."""
    shifts = torch.randint(-max_shift, max_shift + 1, (2, x.shape[0]), generator=gen)
    return shift(x, shifts[0], shifts[1])


def shift(x: torch.Tensor, down: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Move image i down by down[i] and right by right[i] whole pixels (zero fill), by gathering from a padded
    batch."""
    b, c, h, w = x.shape
    pad = int(max(down.abs().max(), right.abs().max(), 0)) if b else 0
    padded = F.pad(x, (pad,) * 4)
    rows = (torch.arange(h, device=x.device)[None, :] + (pad - down.to(x.device))[:, None])[:, None, :, None]
    cols = (torch.arange(w, device=x.device)[None, :] + (pad - right.to(x.device))[:, None])[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def flip(x: torch.Tensor, dim: int, gen: torch.Generator) -> torch.Tensor:
    """Flip each image along `dim` with probability 0.5."""
    mask = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(mask, x.flip(dim), x)


def rotate_and_scale(x: torch.Tensor, max_degrees: float, max_zoom: float, gen: torch.Generator) -> torch.Tensor:
    """Rotate each image by a random angle in [-max_degrees, max_degrees] and zoom it by a random factor in
    [1 - max_zoom, 1 + max_zoom], in one resampling."""
    b = x.shape[0]
    degrees = _uniform(b, -max_degrees, max_degrees, gen) if max_degrees else torch.zeros(b)
    zooms = _uniform(b, 1 - max_zoom, 1 + max_zoom, gen) if max_zoom else torch.ones(b)
    return affine(x, degrees, zooms)


def affine(x: torch.Tensor, degrees: torch.Tensor, zooms: torch.Tensor) -> torch.Tensor:
    """Rotate image i counter-clockwise by degrees[i] and zoom it by zooms[i] about pixel (H//2, W//2) (MNIST's
    centre of mass, 14,14), bilinear, black fill."""
    b, _, h, w = x.shape
    angles = degrees.to(torch.float64) * (math.pi / 180)
    cos, sin = angles.cos() / zooms, angles.sin() / zooms
    # affine_grid maps each output point to the input point it samples, in coordinates where the image spans
    # -1..1 each way; the pivot pixel (h//2, w//2) sits at (cx, cy) there
    cx, cy = (2 * (w // 2) + 1) / w - 1, (2 * (h // 2) + 1) / h - 1
    xx, xy, yx, yy = cos, -sin * h / w, sin * w / h, cos
    tx, ty = cx - (xx * cx + xy * cy), cy - (yx * cx + yy * cy)
    theta = torch.stack([torch.stack([xx, xy, tx], 1), torch.stack([yx, yy, ty], 1)], 1)
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


def stroke_width(x: torch.Tensor, thicker: torch.Tensor) -> torch.Tensor:
    """Thicker (where thicker[i]) or thinner strokes by half a pixel each side, each image's peak kept.

    A grey dilation or erosion with a 3x3 cross at twice the resolution, then averaged back down: a full-pixel
    3x3 erosion would erase many of MNIST's 2-3 px strokes. The cross is the maximum of five shifted views of
    the batch (measured 2.5x faster than max_pool2d with 3x1 and 1x3 kernels here).
    """
    big = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    sign = torch.where(thicker, 1.0, -1.0).to(x.device, x.dtype)[:, None, None, None]
    signed = F.pad(big * sign, (1, 1, 1, 1), value=-math.inf)  # erosion is a dilation of the negated image
    h, w = big.shape[-2:]
    dilated = signed[..., 1:-1, 1:-1]
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        dilated = torch.maximum(dilated, signed[..., dy:dy + h, dx:dx + w])
    small = F.avg_pool2d(dilated * sign, 2)
    peak, new_peak = x.amax((1, 2, 3), keepdim=True), small.amax((1, 2, 3), keepdim=True)
    return torch.where(new_peak > 0, small * peak / new_peak.clamp_min(1e-12), small)


def strokes(x: torch.Tensor, probability: float, gen: torch.Generator) -> torch.Tensor:
    """With `probability`, make each image's strokes thinner or thicker (half and half)."""
    b = x.shape[0]
    chosen = (torch.rand(b, generator=gen) < probability).nonzero().flatten()
    thicker = torch.rand(b, generator=gen) < 0.5
    if not len(chosen):
        return x
    return x.index_copy(0, chosen.to(x.device), stroke_width(x[chosen.to(x.device)], thicker[chosen]))


def augment_batch(x: torch.Tensor, spec: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    """Apply the augmentations of `spec` to a 0..1 batch [B,1,H,W]; random numbers come from `gen`."""
    if spec.translate:
        x = translate(x, spec.translate, gen)
    if spec.hflip:
        x = flip(x, 3, gen)
    if spec.vflip:
        x = flip(x, 2, gen)
    if spec.rotate or spec.scale:
        x = rotate_and_scale(x, spec.rotate, spec.scale, gen)
    if spec.stroke:
        x = strokes(x, spec.stroke, gen)
    if spec.erase:
        x = erase(x, spec.erase, gen)
    return x
