"""Feature spaces in which synthetic and real images are compared: Inception-v3, a classifier's penultimate layer,
or fixed downsampled pixels.

Every extractor is an `nn.Module` mapping uint8 images [N, 3, H, W] to features [N, D] and has `num_features`, so
torchmetrics' FID/KID accept it as `feature=`. Images are embedded once (`embed`); FID, KID, precision/recall,
density/coverage and the memorisation check then all work on the same feature matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from xaug.store.errors import WeightsError

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
"""torch-fidelity's Inception-v3 weights, as torch.hub caches them under <hub dir>/checkpoints/."""
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE


class PixelFeatures(nn.Module):
    """Grey-scale pixels averaged down to `side` x `side`, then a fixed seeded random projection to `dim` values.

    Cheap and deterministic: useful for tests and as a sanity check next to learned features; its distances are
    meaningful for near-copies (memorisation), less so for perceptual quality.
    """

    def __init__(self, side: int = 16, dim: int | None = 64, seed: int = 0) -> None:
        super().__init__()
        self.side = side
        generator = torch.Generator().manual_seed(seed)
        if dim is None:
            projection = torch.eye(side * side)
        else:
            projection = torch.randn(side * side, dim, generator=generator) / dim**0.5
        self.register_buffer("projection", projection)
        self.num_features = int(projection.shape[1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or float images [N, C, H, W] (0..255) -> features [N, D]."""
        x = images.float().mean(dim=1, keepdim=True) / 255.0
        x = F.adaptive_avg_pool2d(x, self.side).flatten(1)
        return x @ self.projection


class ClassifierFeatures(nn.Module):
    """The penultimate layer (pre-logits) of a timm classifier: an in-domain feature space, e.g. the fold's real-only
    classifier."""

    def __init__(self, model: nn.Module, image_size: int, in_chans: int,
                 mean: list[float] | None = None, std: list[float] | None = None) -> None:
        super().__init__()
        self.model = model.eval()
        self.image_size = image_size
        self.in_chans = in_chans
        self.num_features = int(model.num_features)
        channels = in_chans if mean is None or len(mean) == in_chans else 1
        self.register_buffer("mean", torch.tensor(mean or [0.5] * channels).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std or [0.5] * channels).view(1, -1, 1, 1))

    def train(self, mode: bool = True) -> "ClassifierFeatures":
        """Always stays in evaluation mode (batch-norm statistics must not move)."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images [N, C, H, W] -> pre-logit features [N, num_features]."""
        x = images.float().mean(dim=1, keepdim=True) / 255.0
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                              align_corners=False)
        if self.in_chans == 3:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        with torch.no_grad():
            return self.model.forward_head(self.model.forward_features(x), pre_logits=True).flatten(1)


class PrecomputedFeatures(nn.Module):
    """Identity 'extractor' so that torchmetrics' FID/KID can be fed features computed once with `embed`."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Features pass through unchanged."""
        return features


def inception_weights_path(explicit: str | Path | None = None) -> Path:
    """The local Inception-v3 weights file: `explicit` if given, else torch.hub's cache; WeightsError otherwise.

    Never downloads: machines without internet must not spend minutes in retries.
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"quality.inception_weights points to {path}, which does not exist. Download {INCEPTION_URL} on a "
                "machine with internet, copy it there, or set quality.features to 'classifier' or 'pixels'.")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if cached.is_file():
        return cached
    raise WeightsError(
        f"Inception-v3 weights for FID/KID were not found: quality.inception_weights is not set and {cached} does "
        f"not exist. Download {INCEPTION_URL} on a machine with internet and either copy it to {cached.parent}/ "
        "(or $TORCH_HOME/hub/checkpoints/) or set quality.inception_weights to its path in the recipe; "
        "alternatively use quality.features: classifier (in-domain features) or pixels.")


def inception_extractor(weights: str | Path | None = None, dim: int = 2048) -> nn.Module:
    """torchmetrics' Inception-v3 feature extractor from local weights (see `inception_weights_path`)."""
    path = inception_weights_path(weights)
    from torchmetrics.image.fid import NoTrainInceptionV3

    module = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(dim)],
                                feature_extractor_weights_path=str(path))
    module.num_features = dim
    return module


@dataclass
class FeatureSpace:
    """A named feature extractor: `name` is recorded with every quality value ('inception', 'pixels', ...)."""

    name: str
    module: nn.Module
    batch_size: int = 64
    device: str = "cpu"

    def embed(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Grey-scale uint8 images [N, H, W] (or [N, C, H, W]) -> float64 features [N, D] on the CPU."""
        x = torch.as_tensor(np.asarray(images))
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        self.module.to(self.device).eval()
        chunks = []
        with torch.no_grad():
            for start in range(0, x.shape[0], self.batch_size):
                batch = x[start:start + self.batch_size].to(self.device).contiguous()
                chunks.append(self.module(batch).double().cpu().flatten(1))
        if not chunks:
            return torch.zeros(0, int(self.module.num_features), dtype=torch.float64)
        return torch.cat(chunks)


def pixel_space(side: int = 16, dim: int | None = 64, seed: int = 0) -> FeatureSpace:
    """The fixed downsampled-pixel / random-projection feature space."""
    return FeatureSpace("pixels", PixelFeatures(side, dim, seed))


def classifier_space(model: nn.Module, image_size: int, in_chans: int, device: str = "cpu",
                     mean: list[float] | None = None, std: list[float] | None = None) -> FeatureSpace:
    """Penultimate-layer features of a (trained) timm classifier, inputs normalised with its mean/std."""
    return FeatureSpace("classifier", ClassifierFeatures(model, image_size, in_chans, mean, std), device=device)


def inception_space(weights: str | Path | None = None, device: str = "cpu") -> FeatureSpace:
    """Inception-v3 pool features (2048), as in the FID literature and the paper."""
    return FeatureSpace("inception", inception_extractor(weights), device=device)

