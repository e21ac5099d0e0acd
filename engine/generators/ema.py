"""The exponential moving average of a generator's weights: timm's ModelEmaV3 for every generator.

ModelEmaV3 keeps a copy of the model and lerps its parameters toward the trained ones (buffers are copied, as
StyleGAN2 and diffusers do). Only the decay schedule differs between generators:
- the DDPM warms up as diffusers' unconditional example does: decay = 1 - (1 + step)**-power, capped at `decay`
  (timm's `use_warmup`, the same formula and step count as diffusers' EMAModel);
- the GAN follows StyleGAN2-ADA: a half-life of `ema_kimg` thousand images, i.e. decay = 0.5**(batch / ema_nimg),
  with the half-life capped at `rampup` times the images seen so far (`HalfLifeEma`).
`update(model, step)` takes the number of optimizer steps done, including the one just taken.
"""

from __future__ import annotations

import torch
from timm.utils import ModelEmaV3


def warmup_ema(model: torch.nn.Module, decay: float, power: float = 0.75) -> ModelEmaV3:
    """An EMA whose decay warms up as 1 - (1 + step)**-power, capped at `decay` (diffusers' EMAModel schedule)."""
    ema = ModelEmaV3(model, decay=decay, use_warmup=True, warmup_gamma=1.0, warmup_power=power,
                     exclude_buffers=True)
    return ema.requires_grad_(False)


class HalfLifeEma(ModelEmaV3):
    """StyleGAN2-ADA's generator EMA: a half-life in images, ramped up over the first images seen."""

    def __init__(self, model: torch.nn.Module, half_life_kimg: float, batch_size: int, rampup: float | None):
        super().__init__(model, exclude_buffers=True)
        self.half_life_images, self.batch_size, self.rampup = half_life_kimg * 1000, batch_size, rampup
        self.requires_grad_(False)

    def get_decay(self, step: int | None = None) -> float:
        """0.5 ** (batch / half-life in images), the half-life capped at rampup x images seen after `step` steps."""
        half_life = self.half_life_images
        if self.rampup is not None and step is not None:
            half_life = min(half_life, step * self.batch_size * self.rampup)
        return 0.5 ** (self.batch_size / max(half_life, 1e-8))
