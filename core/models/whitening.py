"""Patch whitening: a first convolution set from the data instead of learned (as in the airbench nets).

Each filter projects an image patch on one eigenvector of the patch covariance, scaled to unit variance,
once with each sign so that the ReLU after it keeps both halves. The net then starts from decorrelated
inputs and the early epochs learn faster.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def patch_covariance(images: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """Covariance (about zero, float64, on the CPU) of the patches `conv` sees in normalised `images` [N,C,H,W]."""
    patches = F.unfold(images.detach().float().cpu(), conv.kernel_size, padding=conv.padding, stride=conv.stride)
    patches = patches.transpose(1, 2).reshape(-1, patches.shape[1]).double()
    return patches.T @ patches / len(patches)


@torch.no_grad()
def whiten_conv(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> None:
    """Set `conv`'s filters to the signed, scaled eigenvectors of its patch covariance on `images`.

    `conv` needs twice as many output channels as a patch has values (e.g. 32 for 4x4 grey patches).
    """
    size = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    if conv.out_channels != 2 * size:
        raise ValueError(f"a whitening conv needs {2 * size} output channels, this one has {conv.out_channels}")
    eigenvalues, eigenvectors = torch.linalg.eigh(patch_covariance(images, conv))
    filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]).flip(0)
    filters = filters.reshape(size, *conv.weight.shape[1:])
    conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight))  # the conv's own device and dtype
    if conv.bias is not None:
        conv.bias.zero_()
