"""The StyleGAN2-ADA-style networks for grey-scale images: layers with equalised learning rate, G and D.

Follows Karras et al. (StyleGAN2, CVPR 2020) in a compact form: a mapping network (with a class embedding when
class-conditional), a synthesis network of modulated/demodulated convolutions with noise inputs, a learned constant
input and skip (toRGB) outputs; a residual discriminator with minibatch standard deviation and a projection head
for classes. Simplified against the original: bilinear up/down-sampling instead of FIR filters. Optionally D also
sees the image's high frequencies (`d_high_pass`, after FreGAN).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.transforms.v2.functional import gaussian_blur

from xaug.engine.generators.gan_config import GanConfig

SQRT2 = math.sqrt(2.0)

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


def high_pass(img: torch.Tensor) -> torch.Tensor:
    """The image minus its Gaussian blur (5x5, sigma 1 px): edges and fine texture, zero on smooth regions."""
    return img - gaussian_blur(img, kernel_size=[5, 5], sigma=[1.0, 1.0])


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
        self.mbstd_group, self.high_pass_gain = cfg.mbstd_group, cfg.d_high_pass
        self.from_image = Conv(2 if self.high_pass_gain else 1, cfg.channels(cfg.resolution), 1)
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
        if self.high_pass_gain:
            img = torch.cat([img, high_pass(img) * self.high_pass_gain], dim=1)
        x = self.from_image(img)
        for block in self.blocks:
            x = block(x)
        x = self.conv(self._minibatch_std(x))
        x = self.out(self.fc(x.flatten(1)))
        if self.embed is not None:
            cmap = normalize_2nd_moment(self.embed(c))
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x.float()

