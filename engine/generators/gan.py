"""A StyleGAN2-ADA-style GAN for grey-scale images: network, training step, resumable training loop and sampler.

Follows Karras et al. (StyleGAN2, CVPR 2020; ADA, NeurIPS 2020) in a compact form: a mapping network (with a
class embedding when class-conditional), a synthesis network of modulated/demodulated convolutions with noise
inputs, a learned constant input and skip (toRGB) outputs; a residual discriminator with minibatch standard
deviation and a projection head for classes; the non-saturating logistic loss with lazy R1 regularisation; an
exponential moving average of the generator's weights; and adaptive discriminator augmentation, whose
probability p follows the overfitting signal r_t = E[sign(D(real))] toward a target (0.6).
Simplified against the original: bilinear up/down-sampling instead of FIR filters, no path-length regularisation
and no style mixing. Augmentations are applied to real and fake images alike before the discriminator.

Checkpoint layout in `work_dir`: `generator.json` (what was trained), and per model (`all`, or one per class)
`<unit>/checkpoints/` (engine/checkpoint.py: atomic folders with G, D, EMA, both optimizers, ADA p, step and
RNG; sampling reads the EMA generator's tensors from the newest one).
"""

from __future__ import annotations

import contextlib
import copy
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator

from xaug.engine import checkpoint as ckpt
from xaug.store.errors import DataError
from xaug.engine.generators.base import TrainHooks, TrainImages, TrainOutcome
from xaug.engine.generators.registry import register_generator
from xaug.engine.generators.samples import resize_images, to_model_range, to_uint8, train_each_unit

SQRT2 = math.sqrt(2.0)


class GanConfig(BaseModel):
    """Settings of the StyleGAN2-ADA-style GAN (`model: gan`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

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
    mbstd_group: int = Field(4, ge=1)
    """Group size of the discriminator's minibatch standard deviation layer."""
    truncation_psi: float = Field(1.0, gt=0, le=1)
    """Truncation when sampling (1: none; lower trades diversity for fidelity)."""
    grid_every: int = Field(500, ge=1)
    """Record a grid of EMA samples every this many steps (and at the end)."""
    grid_per_class: int = Field(4, ge=1, le=16)
    """Images per class in each grid."""
    checkpoint_every: int = Field(1000, ge=1)
    """Save a resumable checkpoint every this many steps (and whenever the job is asked to stop)."""
    sample_batch_size: int = Field(64, ge=1)
    """Images generated per forward pass when sampling."""
    amp: bool = True
    """bf16 mixed precision on a GPU (the job turns it off when the recipe's resources.amp is false)."""
    channels_last: bool = True
    """Use the channels-last memory format on a GPU."""
    compile: bool = False
    """torch.compile the networks for training on a GPU (slower start, faster steps)."""

    @model_validator(mode="after")
    def _power_of_two(self):
        if self.resolution & (self.resolution - 1):
            raise ValueError(f"resolution must be a power of two (8, 16, ..., 1024), got {self.resolution}")
        return self

    def channels(self, res: int) -> int:
        """Feature maps at resolution `res`."""
        return max(1, min(self.channels_base // res, self.channels_max))


# ---------------------------------------------------------------------------------------------------------------
# Layers with equalised learning rate (weights stored at unit scale, scaled by 1/sqrt(fan_in) on use).


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit mean square."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class FullyConnected(nn.Module):
    """Equalised-lr linear layer, optionally with leaky ReLU."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.activate else x


class Conv(nn.Module):
    """Equalised-lr convolution, optional leaky ReLU and 2x average-pool down-sampling."""

    def __init__(self, cin: int, cout: int, kernel: int, bias: bool = True, activate: bool = True,
                 down: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.gain = 1 / math.sqrt(cin * kernel * kernel)
        self.activate, self.down, self.padding = activate, down, kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.gain, self.bias, padding=self.padding)
        if self.down:
            x = F.avg_pool2d(x, 2)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.activate else x


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool) -> torch.Tensor:
    """Convolve each sample with the weight scaled per input channel by its style, then demodulated.

    Implemented as StyleGAN2's non-fused variant (scale activations, shared conv, scale outputs): the same
    result as a per-sample grouped convolution, and much faster on CPUs and for training.
    """
    kernel = weight.shape[-1]
    x = x * styles.to(x.dtype).reshape(*styles.shape, 1, 1)
    x = F.conv2d(x, weight.to(x.dtype), padding=kernel // 2)
    if demodulate:
        coefs = (weight.unsqueeze(0) * styles.reshape(styles.shape[0], 1, -1, 1, 1)).square().sum(dim=[2, 3, 4])
        x = x * (coefs + 1e-8).rsqrt().to(x.dtype).reshape(*coefs.shape, 1, 1)
    return x


class MappingNetwork(nn.Module):
    """z (and class) -> w; tracks the average w for truncation."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, layers: int):
        super().__init__()
        self.embed = FullyConnected(c_dim, w_dim) if c_dim else None
        features = [z_dim + (w_dim if c_dim else 0)] + [w_dim] * layers
        self.layers = nn.ModuleList(
            FullyConnected(features[i], features[i + 1], lr_mul=0.01, activate=True) for i in range(layers)
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, psi: float = 1.0, track: bool = False):
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            x = torch.cat([x, normalize_2nd_moment(self.embed(c))], dim=1)
        for layer in self.layers:
            x = layer(x)
        if track:
            self.w_avg.copy_(x.detach().float().mean(0).lerp(self.w_avg, 0.995))
        if psi != 1.0:
            x = self.w_avg.to(x.dtype).lerp(x, psi)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally after 2x up-sampling), per-pixel noise, bias, leaky ReLU."""

    def __init__(self, cin: int, cout: int, w_dim: int, res: int, up: bool):
        super().__init__()
        self.affine = FullyConnected(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(res, res))
        self.up, self.res, self.gain = up, res, 1 / math.sqrt(cin * 9)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = modulated_conv2d(x, self.weight, self.affine(w) * self.gain, demodulate=True)
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, self.res, self.res, device=x.device, dtype=x.dtype) * self.noise_strength
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        x = x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)
        return F.leaky_relu(x, 0.2) * SQRT2


class ToImage(nn.Module):
    """Modulated 1x1 conv to one grey channel (no demodulation): a skip output."""

    def __init__(self, cin: int, w_dim: int):
        super().__init__()
        self.affine = FullyConnected(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(1, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1))
        self.gain = 1 / math.sqrt(cin)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w) * self.gain, demodulate=False)
        return x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)


class SynthesisBlock(nn.Module):
    """One resolution: (const input or up-sampling conv), conv, and a skip output added to the up-sampled image."""

    def __init__(self, cin: int, cout: int, w_dim: int, res: int):
        super().__init__()
        self.first = res == 4
        if self.first:
            self.const = nn.Parameter(torch.randn(cout, 4, 4))
        else:
            self.conv0 = SynthesisLayer(cin, cout, w_dim, res, up=True)
        self.conv1 = SynthesisLayer(cout, cout, w_dim, res, up=False)
        self.to_image = ToImage(cout, w_dim)

    def forward(self, x, img, w, noise_mode):
        if self.first:
            x = self.const.unsqueeze(0).expand(w.shape[0], -1, -1, -1).to(w.dtype)
        else:
            x = self.conv0(x, w, noise_mode)
        x = self.conv1(x, w, noise_mode)
        y = self.to_image(x, w)
        img = y if img is None else F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + y
        return x, img


class Generator(nn.Module):
    """Mapping + synthesis network: (z, one-hot class or None) -> image [B, 1, R, R] in about [-1, 1]."""

    def __init__(self, cfg: GanConfig, c_dim: int):
        super().__init__()
        self.z_dim, self.c_dim = cfg.z_dim, c_dim
        self.mapping = MappingNetwork(cfg.z_dim, c_dim, cfg.w_dim, cfg.mapping_layers)
        resolutions = [2 ** i for i in range(2, int(math.log2(cfg.resolution)) + 1)]
        self.blocks = nn.ModuleList(
            SynthesisBlock(cfg.channels(max(res // 2, 4)) if res > 4 else 0, cfg.channels(res), cfg.w_dim, res)
            for res in resolutions
        )

    def forward(self, z, c=None, psi: float = 1.0, noise_mode: str = "random", track_w: bool = False):
        w = self.mapping(z, c, psi=psi, track=track_w)
        x = img = None
        for block in self.blocks:
            x, img = block(x, img, w, noise_mode)
        return img


class DiscriminatorBlock(nn.Module):
    """Residual block: two convs (the second halves the size) plus a 1x1 down-sampled skip, scaled by 1/sqrt(2)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = Conv(cin, cin, 3)
        self.conv1 = Conv(cin, cout, 3, down=True)
        self.skip = Conv(cin, cout, 1, bias=False, activate=False)

    def forward(self, x):
        y = self.skip(F.avg_pool2d(x, 2))
        return (y + self.conv1(self.conv0(x))) * math.sqrt(0.5)


class Discriminator(nn.Module):
    """Residual discriminator with minibatch stddev; class-conditional through a projection onto a class embedding."""

    def __init__(self, cfg: GanConfig, c_dim: int):
        super().__init__()
        self.mbstd_group = cfg.mbstd_group
        self.from_image = Conv(1, cfg.channels(cfg.resolution), 1)
        resolutions = [2 ** i for i in range(int(math.log2(cfg.resolution)), 2, -1)]
        self.blocks = nn.ModuleList(DiscriminatorBlock(cfg.channels(r), cfg.channels(r // 2)) for r in resolutions)
        ch = cfg.channels(4)
        self.conv = Conv(ch + 1, ch, 3)
        self.fc = FullyConnected(ch * 16, ch, activate=True)
        self.cmap_dim = ch if c_dim else 1
        self.out = FullyConnected(ch, self.cmap_dim)
        self.embed = FullyConnected(c_dim, self.cmap_dim) if c_dim else None

    def _minibatch_std(self, x):
        batch, ch, h, w = x.shape
        group = min(self.mbstd_group, batch)
        while batch % group:
            group -= 1
        y = x.float().reshape(group, -1, ch, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=[1, 2, 3])
        y = y.reshape(-1, 1, 1, 1).repeat(group, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)

    def forward(self, img, c=None):
        x = self.from_image(img)
        for block in self.blocks:
            x = block(x)
        x = self.conv(self._minibatch_std(x))
        x = self.out(self.fc(x.flatten(1)))
        if self.embed is not None:
            cmap = normalize_2nd_moment(self.embed(c))
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x.float()


# ---------------------------------------------------------------------------------------------------------------
# Adaptive discriminator augmentation


def augment(x: torch.Tensor, p: float, *, xflip: bool = False, rotate90: bool = False) -> torch.Tensor:
    """Apply each augmentation with probability p per image: integer translation, isotropic scaling, small rotation,
    brightness and contrast, and, when asked, x-flip and 90-degree rotation (not anatomy-preserving for
    radiographs). Differentiable, so gradients reach G through it."""
    if p <= 0:
        return x
    batch, size, device = x.shape[0], x.shape[-1], x.device

    def where(value: torch.Tensor, neutral: float) -> torch.Tensor:
        """`value` for the images chosen with probability p, `neutral` (no change) for the others."""
        chosen = torch.rand(batch, device=device) < p
        return torch.where(chosen.reshape(-1, *[1] * (value.dim() - 1)), value, torch.full_like(value, neutral))

    # Random draws happen whether or not a transform is on, so the other transforms see the same random stream.
    flip = where(1.0 - 2.0 * torch.randint(0, 2, (batch,), device=device).float(), 1.0)
    quarter_turns = where(torch.randint(0, 4, (batch,), device=device).float(), 0.0)
    if not xflip:
        flip = torch.ones_like(flip)
    if not rotate90:
        quarter_turns = torch.zeros_like(quarter_turns)
    # Whole-pixel shifts of up to 1/8 of the image, in affine_grid's [-1, 1] coordinates.
    shift = where(torch.round((torch.rand(batch, 2, device=device) * 2 - 1) * 0.125 * size) * 2 / size, 0.0)
    scale = where(torch.exp2(torch.randn(batch, device=device) * 0.2), 1.0)
    angle = quarter_turns * (math.pi / 2) + where((torch.rand(batch, device=device) * 2 - 1) * math.pi / 12, 0.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], dim=1),
                         torch.stack([sin * flip, cos, shift[:, 1]], dim=1)], dim=1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    brightness = where(torch.randn(batch, device=device) * 0.2, 0.0).reshape(-1, 1, 1, 1).to(x.dtype)
    contrast = where(torch.exp2(torch.randn(batch, device=device) * 0.5), 1.0).reshape(-1, 1, 1, 1).to(x.dtype)
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * contrast + mean + brightness


# ---------------------------------------------------------------------------------------------------------------
# One model's training state and step


class GanTrainer:
    """G, D, G's EMA, both optimizers and the ADA state of one model; `train_step` does one G and one D update."""

    def __init__(self, cfg: GanConfig, c_dim: int, device: str, seed: int):
        torch.manual_seed(seed)
        self.cfg, self.c_dim, self.device = cfg, c_dim, device
        on_gpu = device.startswith("cuda")
        # bf16 needs no loss scaling; GPUs without it (pre-Ampere) train in fp32.
        self.autocast_dtype = torch.bfloat16 if (on_gpu and cfg.amp and torch.cuda.is_bf16_supported()) else None
        self.G = Generator(cfg, c_dim).to(device)
        self.D = Discriminator(cfg, c_dim).to(device)
        if on_gpu and cfg.channels_last:
            self.G = self.G.to(memory_format=torch.channels_last)
            self.D = self.D.to(memory_format=torch.channels_last)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self._G = torch.compile(self.G) if (on_gpu and cfg.compile) else self.G
        self._D = torch.compile(self.D) if (on_gpu and cfg.compile) else self.D
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=(0.0, 0.99), eps=1e-8)
        ratio = cfg.r1_interval / (cfg.r1_interval + 1)  # lazy regularisation keeps the effective D lr unchanged
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)
        self.step = 0
        self.ada_p = cfg.ada_p_init if cfg.ada else 0.0
        self._ada_sum, self._ada_count = 0.0, 0

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.autocast_dtype)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """ADA's augmentations at the current p, with the recipe's choice of x-flips and 90-degree rotations."""
        return augment(x, self.ada_p, xflip=self.cfg.ada_xflip, rotate90=self.cfg.ada_rotate90)

    def _onehot(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        if not self.c_dim:
            return None
        return F.one_hot(labels.long(), self.c_dim).float().to(self.device)

    def train_step(self, real: torch.Tensor, real_labels: torch.Tensor | None,
                   fake_labels: torch.Tensor | None) -> dict[str, float]:
        """One G update and one D update (with R1 every r1_interval steps) on a batch of real images in [-1, 1]."""
        cfg, batch = self.cfg, real.shape[0]
        real = real.to(self.device)
        if self.device.startswith("cuda") and cfg.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        c_real, c_fake = self._onehot(real_labels), self._onehot(fake_labels)

        # G: non-saturating logistic loss, D frozen.
        self.D.requires_grad_(False)
        z = torch.randn(batch, cfg.z_dim, device=self.device)
        with self._autocast():
            fake = self._G(z, c_fake, track_w=True)
            g_loss = F.softplus(-self._D(self._augment(fake), c_fake)).mean()
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        self.D.requires_grad_(True)

        # D: logistic loss on fakes and reals, lazy R1 on the (augmented) reals.
        do_r1 = cfg.r1_gamma > 0 and self.step % cfg.r1_interval == 0
        z = torch.randn(batch, cfg.z_dim, device=self.device)
        with torch.no_grad(), self._autocast():
            fake = self._G(z, c_fake)
        with self._autocast():
            d_fake = self._D(self._augment(fake), c_fake)
        real_aug = self._augment(real).detach().requires_grad_(do_r1)
        with (contextlib.nullcontext() if do_r1 else self._autocast()):  # R1 in fp32 for accurate gradients
            d_real = self._D(real_aug, c_real)
        d_loss = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
        total = d_loss
        r1 = None
        if do_r1:
            grad, = torch.autograd.grad(d_real.sum(), real_aug, create_graph=True)
            r1 = grad.square().sum(dim=[1, 2, 3]).mean()
            total = d_loss + r1 * (cfg.r1_gamma / 2) * cfg.r1_interval
        self.opt_D.zero_grad(set_to_none=True)
        total.backward()
        self.opt_D.step()

        self._update_ema(batch)
        sign = torch.sign(d_real.detach()).mean().item()
        self._update_ada(sign, batch)
        self.step += 1
        losses = {"g_loss": g_loss.item(), "d_loss": d_loss.item(), "d_real_sign": sign, "ada_p": self.ada_p}
        if r1 is not None:
            losses["r1"] = r1.item()
        return losses

    @torch.no_grad()
    def _update_ema(self, batch: int) -> None:
        ema_nimg = self.cfg.ema_kimg * 1000
        if self.cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, (self.step + 1) * batch * self.cfg.ema_rampup)
        beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    def _update_ada(self, sign: float, batch: int) -> None:
        if not self.cfg.ada:
            return
        self._ada_sum += sign
        self._ada_count += 1
        if self._ada_count >= self.cfg.ada_interval:
            r_t = self._ada_sum / self._ada_count
            adjust = np.sign(r_t - self.cfg.ada_target) * batch * self._ada_count / (self.cfg.ada_kimg * 1000)
            self.ada_p = float(min(max(self.ada_p + adjust, 0.0), 0.99))
            self._ada_sum, self._ada_count = 0.0, 0

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None, psi: float = 1.0) -> torch.Tensor:
        """Images from the EMA generator with constant noise (deterministic for given z)."""
        with self._autocast():
            return self.G_ema(z.to(self.device), self._onehot(labels), psi=psi, noise_mode="const").float()

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Everything needed to resume, as tensors and JSON scalars."""
        tensors = {}
        for name, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            tensors.update(ckpt.prefixed(name, ckpt.module_tensors(module)))
        tensors.update(ckpt.prefixed("rng", ckpt.rng_to_tensors()))
        scalars = {"step": self.step, "ada_p": self.ada_p, "ada_sum": self._ada_sum, "ada_count": self._ada_count}
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            opt_tensors, opt_scalars = ckpt.optimizer_to_state(opt)
            tensors.update(ckpt.prefixed(name, opt_tensors))
            scalars[name] = opt_scalars
        return tensors, scalars

    def load(self, tensors: dict[str, torch.Tensor], scalars: dict) -> None:
        """Restore a state saved by `state` (RNG included, so the run continues as if never stopped)."""
        self.G.load_state_dict(ckpt.unprefixed("G", tensors))
        self.D.load_state_dict(ckpt.unprefixed("D", tensors))
        self.G_ema.load_state_dict(ckpt.unprefixed("G_ema", tensors))
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            ckpt.optimizer_from_state(opt, ckpt.unprefixed(name, tensors), scalars[name])
        self.step, self.ada_p = int(scalars["step"]), float(scalars["ada_p"])
        self._ada_sum, self._ada_count = float(scalars["ada_sum"]), int(scalars["ada_count"])
        ckpt.rng_from_tensors(ckpt.unprefixed("rng", tensors))


# ---------------------------------------------------------------------------------------------------------------
# The registered generator: training loop over models (one conditional, or one per class) and sampling


@register_generator("gan", GanConfig)
class StyleGan:
    """StyleGAN2-ADA-style GAN: class-conditional (projection D) or one model per class."""

    def __init__(self):
        self._loaded: dict[tuple, tuple[GanTrainer, dict]] = {}

    def train(self, params: GanConfig, per_class: bool, data: TrainImages, work_dir: Path, hooks: TrainHooks,
              device: str, seed: int) -> TrainOutcome:
        """Train (or resume) every model in `work_dir`; stops early, with a checkpoint, when hooks.should_stop()."""
        def train_unit(cfg, classes, images, labels, unit_dir, index, offset, total):
            return self._train_unit(cfg, classes, images, labels, unit_dir, hooks, device, seed + index, offset, total)

        return train_each_unit("gan", params, per_class, data, work_dir, train_unit)

    def _train_unit(self, cfg: GanConfig, classes: list[str], images: np.ndarray, labels: np.ndarray | None,
                    unit_dir: Path, hooks: TrainHooks, device: str, seed: int, offset: int, total: int) -> int:
        """Train one model to cfg.steps (resuming if a state exists); returns the step reached."""
        c_dim = len(classes) if labels is not None else 0
        trainer = GanTrainer(cfg, c_dim, device, seed)
        resumed = ckpt.resume_checkpoint(unit_dir / ckpt.CHECKPOINTS)
        if resumed is not None:
            trainer.load(resumed.tensors(device), resumed.scalars)
        if trainer.step >= cfg.steps:
            return trainer.step
        reals = to_model_range(resize_images(images, cfg.resolution))
        label_t = torch.from_numpy(np.asarray(labels)).long() if labels is not None else None
        while trainer.step < cfg.steps:
            idx = torch.randint(len(reals), (cfg.batch_size,))
            fake_idx = torch.randint(len(reals), (cfg.batch_size,))  # fake classes follow the data's class balance
            losses = trainer.train_step(reals[idx], None if label_t is None else label_t[idx],
                                        None if label_t is None else label_t[fake_idx])
            step = trainer.step
            hooks.progress(offset + step, total, losses)
            last = step == cfg.steps
            if step % cfg.grid_every == 0 or last:
                hooks.grid(offset + step, *self._grid(trainer, classes))
            if step % cfg.checkpoint_every == 0 or last:
                self._save(trainer, unit_dir)
            if not last and hooks.should_stop():
                if step % cfg.checkpoint_every:
                    self._save(trainer, unit_dir)
                return step
        return trainer.step

    @staticmethod
    def _grid(trainer: GanTrainer, classes: list[str]) -> tuple[np.ndarray, list[str]]:
        """Fixed-latent EMA samples, grid_per_class per class (fixed z so grids are comparable across steps)."""
        cfg = trainer.cfg
        gen = torch.Generator().manual_seed(1234)
        n = cfg.grid_per_class * len(classes)
        z = torch.randn(n, cfg.z_dim, generator=gen)
        labels = torch.arange(len(classes)).repeat_interleave(cfg.grid_per_class) if trainer.c_dim else None
        images = to_uint8(trainer.generate(z, labels))
        return images, [classes[i // cfg.grid_per_class] for i in range(n)]

    @staticmethod
    def _save(trainer: GanTrainer, unit_dir: Path) -> None:
        """One atomic checkpoint: the training state, whose G_ema tensors are also what sampling loads."""
        ckpt.save_checkpoint(unit_dir / ckpt.CHECKPOINTS, trainer.step, *trainer.state())

    def _load_for_sampling(self, checkpoint: Path, class_name: str, device: str) -> tuple[GanTrainer, int | None]:
        """The EMA generator for a class (cached), and its label index when class-conditional."""
        manifest = ckpt.read_json(Path(checkpoint) / "generator.json")
        classes = manifest["classes"]
        if class_name not in classes:
            raise DataError(f"class '{class_name}' is not one of this GAN's classes ({', '.join(classes)}); "
                            f"checkpoint {checkpoint}")
        unit = class_name if manifest["per_class"] else "all"
        key = (str(Path(checkpoint).resolve()), unit, device)
        if key not in self._loaded:
            cfg = GanConfig(**manifest["params"])
            trainer = GanTrainer(cfg, 0 if manifest["per_class"] else len(classes), device, seed=0)
            saved = ckpt.load_checkpoint(Path(checkpoint) / unit / ckpt.CHECKPOINTS)
            if saved is None:
                raise ckpt.CheckpointError(f"{Path(checkpoint) / unit / ckpt.CHECKPOINTS} holds no checkpoint: "
                                           "train_generator did not finish")
            trainer.G_ema.load_state_dict(saved.tensors(device, prefix="G_ema"))
            self._loaded = {key: (trainer, manifest)}  # keep one model in memory at a time
        trainer, manifest = self._loaded[key]
        return trainer, None if manifest["per_class"] else classes.index(class_name)

    def sample(self, checkpoint: Path, class_name: str, n: int, seed: int, device: str) -> np.ndarray:
        """n uint8 images [n, R, R] of one class; the same seed gives the same images."""
        trainer, label = self._load_for_sampling(checkpoint, class_name, device)
        cfg = trainer.cfg
        z = torch.randn(n, cfg.z_dim, generator=torch.Generator().manual_seed(seed))
        out = []
        for start in range(0, n, cfg.sample_batch_size):
            zb = z[start:start + cfg.sample_batch_size]
            labels = None if label is None else torch.full((len(zb),), label, dtype=torch.long)
            out.append(to_uint8(trainer.generate(zb, labels, psi=cfg.truncation_psi)))
        return np.concatenate(out) if out else np.zeros((0, cfg.resolution, cfg.resolution), dtype=np.uint8)
