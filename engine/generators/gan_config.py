"""Settings of the StyleGAN2-ADA-style GAN (`model: gan`): the recipe's `params`, validated once."""

from __future__ import annotations

from pydantic import Field, model_validator

from xaug.engine.generators.pixel_params import PixelGeneratorParams


class GanConfig(PixelGeneratorParams):
    """Settings of the StyleGAN2-ADA-style GAN (`model: gan`)."""

    resolution: int = Field(64, ge=8, le=1024)
    """Side of generated images in pixels (a power of two); training images are resized to it."""
    channels_base: int = Field(16384, ge=16)
    """Feature maps at resolution r are min(channels_base // r, channels_max) (StyleGAN2-ADA at 256 px: 16384)."""
    channels_max: int = Field(512, ge=4)
    """Upper bound on feature maps per layer."""
    z_dim: int = Field(512, ge=1)
    """Dimension of the latent input z."""
    w_dim: int = Field(512, ge=1)
    """Dimension of the intermediate latent w (the style)."""
    mapping_layers: int = Field(4, ge=1)
    """Fully connected layers in the mapping network (StyleGAN2: 8; ADA on small data: 2)."""
    batch_size: int = Field(16, ge=2)
    """Images per training step for G and D."""
    steps: int = Field(20000, ge=1)
    """Training steps per model (one G and one D update each)."""
    lr: float = Field(0.0025, gt=0)
    """Adam learning rate of G and D (betas 0, 0.99)."""
    r1_gamma: float = Field(1.0, ge=0)
    """R1 regularisation weight; StyleGAN2-ADA's heuristic is 0.0002 * resolution**2 / batch_size."""
    r1_interval: int = Field(16, ge=1)
    """Apply R1 every this many steps (lazy regularisation), scaled up accordingly."""
    ema_kimg: float = Field(10.0, gt=0)
    """Half-life of the generator's EMA in thousands of images."""
    ema_rampup: float | None = Field(0.05, gt=0)
    """Caps the EMA half-life at this fraction of the images seen so far (faster EMA early on); null: off."""
    ada: bool = True
    """Adaptive discriminator augmentation; off means no augmentation at all."""
    ada_xflip: bool = False
    """Let ADA mirror images left-right. Off by default: a mirrored chest radiograph (heart on the right) is not a
    plausible image of this data set, and ADA's augmentations can leak into the generator's samples."""
    ada_rotate90: bool = False
    """Let ADA rotate images by multiples of 90 degrees (off by default, for the same reason); small rotations,
    shifts, scaling, brightness and contrast stay on."""
    ada_target: float = Field(0.6, gt=0, lt=1)
    """Target of the overfitting heuristic r_t = E[sign(D(real))]; p rises while r_t is above it."""
    ada_interval: int = Field(4, ge=1)
    """Adjust p every this many steps."""
    ada_kimg: float = Field(100.0, gt=0)
    """p can move from 0 to 1 within this many thousand images (StyleGAN2-ADA: 500)."""
    ada_p_init: float = Field(0.0, ge=0, lt=1)
    """Augmentation probability at the start."""
    d_high_pass: float = Field(0.0, ge=0)
    """Gain of a second discriminator input: the image minus its Gaussian blur (sigma 1 px), i.e. its fine detail
    (ribs, vessel markings, edges). 0: off, D sees the image only (StyleGAN2-ADA). A high-frequency discriminator
    input follows FreGAN (Yang et al., NeurIPS 2022), which found it helps GANs on limited data: D, and so G, attends
    to fine texture early instead of only after the coarse layout is right. In the quickstart (gain 1.5) the GAN
    draws ribs within 1,400 steps of batch 2; without it they appear only after about 2,800."""
    mbstd_group: int = Field(4, ge=1)
    """Group size of the discriminator's minibatch standard deviation layer."""
    truncation_psi: float = Field(1.0, gt=0, le=1)
    """Truncation when sampling (1: none; lower trades diversity for fidelity)."""
    grid_every: int = Field(500, ge=1)
    """Record a grid of EMA samples every this many steps (and at the end)."""

    @model_validator(mode="after")
    def _power_of_two(self):
        if self.resolution & (self.resolution - 1):
            raise ValueError(f"resolution must be a power of two (8, 16, ..., 1024), got {self.resolution}")
        return self

    def channels(self, res: int) -> int:
        """Feature maps at resolution `res`."""
        return max(1, min(self.channels_base // res, self.channels_max))
