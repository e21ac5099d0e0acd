"""Training augmentation presets of the classifiers (`augment:` in a recipe), built on kornia.augmentation.

Presets act on a float batch [B,1,H,W] in 0..1 on any device, with parameters drawn per image from torch's global
RNG (seeded by the training run and saved in its checkpoints, so a resumed run draws the same ones). No preset
flips or turns images by 90 degrees: a radiograph's left and right are anatomy, not a symmetry.

- `standard`: mild; affine up to 7 degrees, 5% shift, 7% scale; brightness and contrast up to 15%.
- `paper`: the reference study's (Bioengineering 2023, 10(12), 1421): shift-scale-rotate up to 50% scale, CLAHE or
  gamma, blur or sharpen, and dropout 0.5 before the head. The paper names the operations and the 50% scale;
  the other ranges and probabilities are albumentations' defaults for those operations (ShiftScaleRotate: 6.25%
  shift, 45 degrees, reflected border, p 0.5; CLAHE clip 1-4 on 8x8 tiles; gamma 0.8-1.2), each photometric
  operation applied with probability 0.25 so that about half of the images get one of each pair.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

PRESETS = ("none", "standard", "paper")
PAPER_DROP_RATE = 0.5
"""Dropout before the classifier head with the `paper` preset (timm's `drop_rate`)."""


def make_augmentation(preset: str) -> nn.Module | None:
    """The augmentation of a preset, or None for `none`; ValueError for an unknown name."""
    if preset == "none":
        return None
    if preset == "standard":
        return K.AugmentationSequential(
            K.RandomAffine(degrees=7, translate=(0.05, 0.05), scale=(0.93, 1.07), p=1.0),
            K.ColorJitter(brightness=0.15, contrast=0.15, p=1.0),
        )
    if preset == "paper":
        return K.AugmentationSequential(
            K.RandomAffine(degrees=45, translate=(0.0625, 0.0625), scale=(0.5, 1.5), padding_mode="reflection",
                           p=0.5),
            K.RandomClahe(clip_limit=(1.0, 4.0), grid_size=(8, 8), p=0.25),
            K.RandomGamma(gamma=(0.8, 1.2), p=0.25),
            K.RandomGaussianBlur(kernel_size=(5, 5), sigma=(0.1, 2.0), p=0.25),
            K.RandomSharpness(sharpness=0.5, p=0.25),
        )
    raise ValueError(f"unknown augmentation preset {preset!r}; presets are {', '.join(PRESETS)}")


def preset_model_kwargs(preset: str) -> dict:
    """timm.create_model keyword arguments a preset implies (the `paper` preset's dropout)."""
    return {"drop_rate": PAPER_DROP_RATE} if preset == "paper" else {}


def augment_batch(x: torch.Tensor, augmentation: nn.Module) -> torch.Tensor:
    """Apply `augmentation` to a float [B,1,H,W] batch in 0..1 (each image its own parameters), clamped to 0..1."""
    return augmentation(x).clamp_(0.0, 1.0)
