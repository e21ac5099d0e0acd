"""Settings of the pixel-space DDPM (`model: ddpm`): the recipe's params schema, free of torch and diffusers so that
loading a recipe imports no model library (the model and its training live in ddpm.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from xaug.engine.generators.pixel_params import PixelGeneratorParams


class DdpmConfig(PixelGeneratorParams):
    """Settings of the pixel-space DDPM (`model: ddpm`)."""

    resolution: int = Field(64, ge=8, le=1024)
    """Side of generated images in pixels; must be divisible by 2**(levels - 1). Training images are resized to it."""
    block_out_channels: tuple[int, ...] = (64, 128, 128, 256)
    """Feature maps per U-Net level (one level per entry, each halving the resolution)."""
    layers_per_block: int = Field(2, ge=1)
    """ResNet layers per U-Net level."""
    attention: bool = True
    """Self-attention in the U-Net's middle block and in the levels of attention_levels (off: none anywhere)."""
    attention_levels: tuple[int, ...] | None = None
    """Levels (0: full resolution) whose down block and mirrored up block use self-attention; default: the
    lowest-resolution level. diffusers' unconditional training example: [4] of six levels (its 5th down and 2nd up
    block)."""
    norm_num_groups: int = Field(32, ge=1)
    """Group-norm groups; must divide every entry of block_out_channels."""
    steps: int = Field(20000, ge=1)
    """Training steps per model."""
    batch_size: int = Field(16, ge=1)
    """Images per training step."""
    lr: float = Field(1e-4, gt=0)
    """AdamW learning rate (after a linear warm-up)."""
    lr_warmup_steps: int = Field(500, ge=0)
    """Steps of linear learning-rate warm-up."""
    weight_decay: float = Field(1e-6, ge=0)
    """AdamW weight decay (diffusers example: 1e-6)."""
    grad_clip: float = Field(1.0, gt=0)
    """Clip the gradient norm to this value."""
    num_train_timesteps: int = Field(1000, ge=2)
    """Diffusion steps of the training noise schedule."""
    beta_schedule: Literal["linear", "squaredcos_cap_v2"] = "linear"
    """Noise schedule: linear (DDPM paper) or cosine (squaredcos_cap_v2)."""
    ema_decay: float = Field(0.9999, gt=0, lt=1)
    """Maximum EMA decay (warm-up: decay = 1 - (1 + step)**-0.75, capped here)."""
    cond_drop_prob: float = Field(0.1, ge=0, lt=1)
    """Class-conditional only: fraction of training steps' labels replaced by a null class (classifier-free guidance)."""
    guidance_scale: float = Field(1.0, ge=1)
    """Class-conditional only: classifier-free guidance when sampling (1: plain conditional sampling)."""
    flip: bool = False
    """Random horizontal flips of training images (off: chest X-rays are not left-right symmetric)."""
    sampler: Literal["ddpm", "ddim", "dpmsolver++"] = "dpmsolver++"
    """Sampling scheduler: ddpm (ancestral, the paper: 250 steps), ddim, or dpmsolver++ (DPM-Solver++ 2M)."""
    sample_steps: int = Field(25, ge=1)
    """Denoising steps when sampling (the paper's DDPM: 250)."""

    @model_validator(mode="after")
    def _check_shapes(self):
        if self.resolution % 2 ** (len(self.block_out_channels) - 1):
            raise ValueError(f"resolution {self.resolution} is not divisible by 2**{len(self.block_out_channels) - 1}"
                             f" (one halving per level of block_out_channels {list(self.block_out_channels)})")
        levels = len(self.block_out_channels)
        if self.attention_levels is not None and any(not 0 <= lv < levels for lv in self.attention_levels):
            raise ValueError(f"attention_levels {list(self.attention_levels)} must lie in 0..{levels - 1} (one level "
                             f"per entry of block_out_channels)")
        bad = [c for c in self.block_out_channels if c % self.norm_num_groups]
        if bad:
            raise ValueError(f"norm_num_groups {self.norm_num_groups} does not divide block_out_channels {bad}")
        return self
