"""Settings every pixel-space generator (GAN, DDPM) shares: the driver's grid and checkpoint cadence, sampling batch
and GPU speed options. Free of torch, like the params models that extend it (gan_config.py, ddpm_config.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PixelGeneratorParams(BaseModel):
    """Cadence, sampling batch and GPU options of a pixel-space generator (a base of GanConfig and DdpmConfig)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    grid_every: int = Field(1000, ge=1)
    """Record a grid of EMA samples every this many steps (and at the end)."""
    grid_per_class: int = Field(4, ge=1, le=16)
    """Images per class in each grid."""
    checkpoint_every: int = Field(1000, ge=1)
    """Save a resumable checkpoint every this many steps (and whenever the job is asked to stop)."""
    sample_batch_size: int = Field(64, ge=1)
    """Images generated together when sampling."""
    amp: bool = True
    """bf16 mixed precision on a GPU (the job turns it off when the recipe's resources.amp is false)."""
    channels_last: bool = True
    """Use the channels-last memory format on a GPU."""
    compile: bool = False
    """torch.compile the networks on a GPU (slower start, faster steps)."""
