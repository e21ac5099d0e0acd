"""Stable Diffusion full fine-tuning: one text-conditioned model for all classes, trained on captioned images.

The UNet is trained (optionally the text encoder too) on the fold's training images, each captioned with its
class prompt (the paper's prompts by default). Shared machinery lives in sd_params.py (settings), sd_model.py
(loading), sd_data.py, sd_method.py (the hooks each method overrides), sd_training.py and sd_sampling.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xaug.engine.generators.base import TrainHooks, TrainImages, TrainOutcome
from xaug.engine.generators.registry import register_generator
from xaug.engine.generators.sd_method import SdMethod
from xaug.engine.generators.sd_params import SdFinetuneConfig
from xaug.engine.generators.sd_sampling import sample_sd
from xaug.engine.generators.sd_training import train_sd


class FinetuneMethod(SdMethod):
    """Trains every UNet weight, and the text encoder when asked."""

    name = "sd_finetune"

    def trains_text_encoder(self, params) -> bool:
        """Whether train_text_encoder is set."""
        return bool(params.train_text_encoder)


@register_generator("sd_finetune", SdFinetuneConfig, distributed=True)
class SdFinetune:
    """Stable Diffusion fine-tuning behind the generator contract."""

    method = FinetuneMethod()

    def train(self, params: SdFinetuneConfig, per_class: bool, data: TrainImages, work_dir: Path, hooks: TrainHooks,
              device: str, seed: int) -> TrainOutcome:
        """Fine-tune (or resume) in work_dir; one model for all classes unless per_class."""
        return train_sd(self.method, _as_config(params), per_class, data, work_dir, hooks, device, seed)

    def sample(self, checkpoint: Path, class_name: str, n: int, seed: int, device: str, **overrides) -> np.ndarray:
        """n grey uint8 images [n,H,W] of a class (image i from seed + i)."""
        return sample_sd(self.method, checkpoint, class_name, n, seed, device, **overrides)


def _as_config(params) -> SdFinetuneConfig:
    return params if isinstance(params, SdFinetuneConfig) else SdFinetuneConfig.model_validate(params)
