"""What a classifier sees: grey uint8 images resized, augmented (training only) and normalised, on any device."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2


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


def make_augmentation() -> v2.Transform:
    """Standard, mild augmentation for radiographs: small affine, brightness/contrast; no flips (anatomy is sided)."""
    return v2.Compose([
        v2.RandomAffine(degrees=7, translate=(0.05, 0.05), scale=(0.93, 1.07)),
        v2.ColorJitter(brightness=0.15, contrast=0.15),
    ])


def augment_batch(x: torch.Tensor, transform: v2.Transform) -> torch.Tensor:
    """Apply `transform` to each image of a float [B,1,H,W] batch with its own random parameters."""
    return torch.stack([transform(img) for img in x]).clamp_(0.0, 1.0)


def normalise(x: torch.Tensor, in_chans: int, mean: list[float], std: list[float]) -> torch.Tensor:
    """float [B,1,H,W] in 0..1 -> normalised [B,in_chans,H,W] (grey repeated for 3-channel models)."""
    if in_chans == 3:
        x = x.expand(-1, 3, -1, -1)
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s
