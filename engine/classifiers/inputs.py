"""What a classifier sees: grey uint8 images resized and normalised, on any device (augmentation: augment.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize_images(images: np.ndarray, size: int, chunk: int = 256) -> np.ndarray:
    """uint8 [N,H,W] -> uint8 [N,size,size] (antialiased bilinear); returned unchanged when already that size."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"expected grey images [N,H,W], got shape {images.shape}")
    if images.shape[1:] == (size, size):
        return images.astype(np.uint8, copy=False)
    out = np.empty((len(images), size, size), dtype=np.uint8)
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + chunk])).float().unsqueeze(1)
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + chunk] = y.round().clamp(0, 255).squeeze(1).to(torch.uint8).numpy()
    return out


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
