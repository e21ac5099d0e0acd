"""Adaptive discriminator augmentation (Karras et al., NeurIPS 2020): the differentiable augmentations applied with
probability p to real and fake images alike before the GAN's discriminator."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, p: float, *, xflip: bool = False, rotate90: bool = False) -> torch.Tensor:
    """Apply each augmentation with probability p per image: integer translation, isotropic scaling, small rotation,
    brightness and contrast, and, when asked, x-flip and 90-degree rotation (not anatomy-preserving for
    radiographs). Differentiable, so gradients reach G through it."""
    if p <= 0:
        return x
    batch, size, device = x.shape[0], x.shape[-1], x.device

    def where(value: torch.Tensor, neutral: float) -> torch.Tensor:
        """`value` for the images chosen with probability p, `neutral` (no change) for the others."""
        chosen = torch.rand(batch, device=device) < p
        return torch.where(chosen.reshape(-1, *[1] * (value.dim() - 1)), value, torch.full_like(value, neutral))

    # Random draws happen whether or not a transform is on, so the other transforms see the same random stream.
    flip = where(1.0 - 2.0 * torch.randint(0, 2, (batch,), device=device).float(), 1.0)
    quarter_turns = where(torch.randint(0, 4, (batch,), device=device).float(), 0.0)
    if not xflip:
        flip = torch.ones_like(flip)
    if not rotate90:
        quarter_turns = torch.zeros_like(quarter_turns)
    # Whole-pixel shifts of up to 1/8 of the image, in affine_grid's [-1, 1] coordinates.
    shift = where(torch.round((torch.rand(batch, 2, device=device) * 2 - 1) * 0.125 * size) * 2 / size, 0.0)
    scale = where(torch.exp2(torch.randn(batch, device=device) * 0.2), 1.0)
    angle = quarter_turns * (math.pi / 2) + where((torch.rand(batch, device=device) * 2 - 1) * math.pi / 12, 0.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], dim=1),
                         torch.stack([sin * flip, cos, shift[:, 1]], dim=1)], dim=1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    brightness = where(torch.randn(batch, device=device) * 0.2, 0.0).reshape(-1, 1, 1, 1).to(x.dtype)
    contrast = where(torch.exp2(torch.randn(batch, device=device) * 0.5), 1.0).reshape(-1, 1, 1, 1).to(x.dtype)
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * contrast + mean + brightness

