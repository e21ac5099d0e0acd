"""The one resize of prepared images: stacks of square grey images, for classifiers, generators and metrics.

Its own module, apart from images.py: it needs torch, and loading a recipe (which reads image files to check a
dataset) must not import it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from xaug.store.errors import DataError


def resize_images(images: np.ndarray, size: int, chunk: int = 256) -> np.ndarray:
    """Grey uint8 [N, H, W] -> uint8 [N, size, size] (antialiased bilinear, rounded), in chunks to bound memory;
    the input itself when it is already that size. Every consumer of prepared images resizes with this, so a
    classifier, a generator and a quality metric see the same pixels at the same resolution."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise DataError(f"expected grey-scale images [N, H, W], got an array of shape {images.shape}")
    if images.shape[1:] == (size, size):
        return images.astype(np.uint8, copy=False)
    out = np.empty((len(images), size, size), dtype=np.uint8)
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + chunk])).float().unsqueeze(1)
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + chunk] = y.round().clamp(0, 255).squeeze(1).to(torch.uint8).numpy()
    return out
