"""One GAN model's training: G, D, G's EMA, both optimizers and the ADA state, its step, and its state to resume.

The non-saturating logistic loss with lazy R1 regularisation; an exponential moving average of G's weights with
StyleGAN2-ADA's half-life in images (ema.py); adaptive discriminator augmentation, whose probability p follows the
overfitting signal r_t = E[sign(D(real))] toward a target (0.6). Simplified against the original: no path-length
regularisation and no style mixing. `GanRun` binds a trainer to its training images for the driver (driver.py).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from xaug.engine import checkpoint as ckpt
from xaug.engine.generators.driver import TrainerRun
from xaug.engine.generators.ema import HalfLifeEma
from xaug.engine.generators.gan_augment import augment
from xaug.engine.generators.gan_config import GanConfig
from xaug.engine.generators.gan_networks import Discriminator, Generator
from xaug.engine.generators.samples import to_uint8
from xaug.engine.precision import precision_for


class GanTrainer:
    """G, D, G's EMA, both optimizers and the ADA state of one model; `train_step` does one G and one D update."""

    def __init__(self, cfg: GanConfig, c_dim: int, device: str, seed: int):
        torch.manual_seed(seed)
        self.cfg, self.c_dim, self.device = cfg, c_dim, device
        on_gpu = device.startswith("cuda")
        # No loss scaling here (R1 needs accurate gradients): bf16 where supported, else fp32.
        self.precision = precision_for(device, cfg.amp, channels_last=cfg.channels_last, fp16_fallback=False)
        self.G = self.precision.memory_format(Generator(cfg, c_dim).to(device))
        self.D = self.precision.memory_format(Discriminator(cfg, c_dim).to(device))
        self.ema = HalfLifeEma(self.G, cfg.ema_kimg, cfg.batch_size, cfg.ema_rampup)
        self._G = torch.compile(self.G) if (on_gpu and cfg.compile) else self.G
        self._D = torch.compile(self.D) if (on_gpu and cfg.compile) else self.D
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=(0.0, 0.99), eps=1e-8)
        ratio = cfg.r1_interval / (cfg.r1_interval + 1)  # lazy regularisation keeps the effective D lr unchanged
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)
        self.step = 0
        self.ada_p = cfg.ada_p_init if cfg.ada else 0.0
        self._ada_sum, self._ada_count = 0.0, 0

    @property
    def G_ema(self) -> Generator:
        """The EMA generator: what grids and sampling draw from."""
        return self.ema.module

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
        real = self.precision.memory_format(real.to(self.device))
        c_real, c_fake = self._onehot(real_labels), self._onehot(fake_labels)

        # G: non-saturating logistic loss, D frozen.
        self.D.requires_grad_(False)
        z = torch.randn(batch, cfg.z_dim, device=self.device)
        with self.precision.autocast():
            fake = self._G(z, c_fake, track_w=True)
            g_loss = F.softplus(-self._D(self._augment(fake), c_fake)).mean()
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_G.step()
        self.D.requires_grad_(True)

        # D: logistic loss on fakes and reals, lazy R1 on the (augmented) reals.
        do_r1 = cfg.r1_gamma > 0 and self.step % cfg.r1_interval == 0
        z = torch.randn(batch, cfg.z_dim, device=self.device)
        with torch.no_grad(), self.precision.autocast():
            fake = self._G(z, c_fake)
        with self.precision.autocast():
            d_fake = self._D(self._augment(fake), c_fake)
        real_aug = self._augment(real).detach().requires_grad_(do_r1)
        with (contextlib.nullcontext() if do_r1 else self.precision.autocast()):  # R1 in fp32 for accurate gradients
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

        self.ema.update(self.G, step=self.step + 1)
        sign = torch.sign(d_real.detach()).mean().item()
        self._update_ada(sign, batch)
        self.step += 1
        losses = {"g_loss": g_loss.item(), "d_loss": d_loss.item(), "d_real_sign": sign, "ada_p": self.ada_p}
        if r1 is not None:
            losses["r1"] = r1.item()
        return losses

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
        with self.precision.autocast():
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



class GanRun(TrainerRun):
    """A GanTrainer bound to one unit's training images: the step and sample functions the driver calls."""

    def train_step(self) -> dict[str, float]:
        """One G and D update on a batch drawn with replacement; fake classes follow the data's class balance."""
        batch = self.trainer.cfg.batch_size
        idx = torch.randint(len(self.images), (batch,))
        fake_idx = torch.randint(len(self.images), (batch,))
        if self.labels is None:
            return self.trainer.train_step(self.images[idx], None, None)
        return self.trainer.train_step(self.images[idx], self.labels[idx], self.labels[fake_idx])

    def sample_grid(self) -> tuple[np.ndarray, list[str]]:
        """Fixed-latent EMA samples, grid_per_class per class (fixed z so grids are comparable across steps)."""
        trainer, classes = self.trainer, self.classes
        per_class = trainer.cfg.grid_per_class
        n = per_class * len(classes)
        z = torch.randn(n, trainer.cfg.z_dim, generator=torch.Generator().manual_seed(1234))
        labels = torch.arange(len(classes)).repeat_interleave(per_class) if trainer.c_dim else None
        return to_uint8(trainer.generate(z, labels)), [classes[i // per_class] for i in range(n)]
