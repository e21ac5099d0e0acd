"""What a classifier sees: grey uint8 images (resized by data.resize.resize_images) normalised, on any device
(augmentation: augment.py)."""

from __future__ import annotations

import torch


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B,H,W] -> float [B,1,H,W] in 0..1."""
    return images.float().unsqueeze(1) / 255.0


def normalise(x: torch.Tensor, in_chans: int, mean: list[float], std: list[float]) -> torch.Tensor:
    """float [B,1,H,W] in 0..1 -> normalised [B,in_chans,H,W] (grey repeated for 3-channel models)."""
    if in_chans == 3:
        x = x.expand(-1, 3, -1, -1)
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s
