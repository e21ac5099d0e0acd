"""A pixel-space DDPM for grey-scale images: diffusers UNet2DModel + DDPMScheduler, resumable training, sampling.

Training predicts the noise (epsilon) with an MSE loss, keeps an EMA of the weights (ema.py, with warm-up as in
diffusers' unconditional training example) and uses bf16 autocast on a GPU (engine/precision.py); the driver
(driver.py) runs the steps, grids and checkpoints. Class-conditional models
embed the class (UNet2DModel num_class_embeds, plus a null class for classifier-free guidance when
cond_drop_prob > 0); per-class models are unconditional, one per class, as in the paper.
Sampling: `ddpm` (ancestral; the paper used 250 steps), `ddim` or `dpmsolver++` (DPM-Solver++ 2M) with
`sample_steps` steps.

Checkpoint layout in `work_dir`: `generator.json`, and per model (`all`, or one per class) `<unit>/checkpoints/`
(engine/checkpoint.py: atomic folders, each with the raw weights, optimizer, EMA, step and RNG to resume, plus
`unet/` (save_pretrained of the EMA weights, the model sampled from) and `scheduler/` (training noise schedule)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from xaug.engine import checkpoint as ckpt
from xaug.store.errors import DataError
from xaug.engine.generators import distributed as dist
from xaug.engine.generators.base import TrainHooks, TrainImages, TrainOutcome
from xaug.engine.generators.ddpm_config import DdpmConfig
from xaug.engine.generators.driver import TrainerRun, Unit, sampling_unit, train_image_models
from xaug.engine.generators.ema import warmup_ema
from xaug.engine.generators.registry import register_generator
from xaug.engine.generators.samples import to_uint8
from xaug.engine.precision import precision_for

SAMPLERS = ("ddpm", "ddim", "dpmsolver++")


def build_unet(cfg: DdpmConfig, num_classes: int):
    """A 1-channel UNet2DModel; `num_classes` > 0 adds class embeddings (plus a null class for guidance)."""
    from diffusers import UNet2DModel

    levels = len(cfg.block_out_channels)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if cfg.attention:
        for level in cfg.attention_levels if cfg.attention_levels is not None else (levels - 1,):
            down[level], up[levels - 1 - level] = "AttnDownBlock2D", "AttnUpBlock2D"
    extra = {}
    if num_classes:
        extra["num_class_embeds"] = num_classes + (1 if cfg.cond_drop_prob > 0 else 0)
    return UNet2DModel(
        sample_size=cfg.resolution, in_channels=1, out_channels=1, layers_per_block=cfg.layers_per_block,
        block_out_channels=tuple(cfg.block_out_channels), down_block_types=tuple(down), up_block_types=tuple(up),
        norm_num_groups=cfg.norm_num_groups, add_attention=cfg.attention, **extra,
    )


def build_train_scheduler(cfg: DdpmConfig):
    """The training noise schedule (DDPMScheduler)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule)


def build_sampler(name: str, train_scheduler_config):
    """A fresh sampling scheduler of the given kind, sharing the training noise schedule."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    if name == "ddpm":
        return DDPMScheduler.from_config(train_scheduler_config)
    if name == "ddim":
        return DDIMScheduler.from_config(train_scheduler_config)
    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(train_scheduler_config, algorithm_type="dpmsolver++",
                                                      solver_order=2)
    raise DataError(f"unknown sampler '{name}'; choose one of {', '.join(SAMPLERS)}")


class DdpmTrainer:
    """U-Net, optimizer, EMA and noise schedule of one model; `train_step` does one denoising update.

    Runs as one process of a DDP group when launched by torch.distributed.run (see distributed.py): every process
    draws the global batch's randomness from `gen` (seeded alike everywhere) and trains on its own slice.
    """

    def __init__(self, cfg: DdpmConfig, num_classes: int, device: str, seed: int, accelerator=None):
        torch.manual_seed(seed)
        self.acc = accelerator or dist.accelerator_for(device)
        device = str(self.acc.device) if device.startswith("cuda") else device  # cuda:<local rank> under DDP
        self.cfg, self.num_classes, self.device = cfg, num_classes, device
        self.gen = torch.Generator().manual_seed(seed)
        """The training stream (batch indices, flips, label drops, timesteps, noise), the same in every process."""
        on_gpu = device.startswith("cuda")
        # Trained without loss scaling: bf16 where supported, else fp32.
        self.precision = precision_for(device, cfg.amp, channels_last=cfg.channels_last, fp16_fallback=False)
        self.unet = self.precision.memory_format(build_unet(cfg, num_classes).to(device))
        self.scheduler = build_train_scheduler(cfg)
        optimizer = torch.optim.AdamW(self.unet.parameters(), lr=cfg.lr, betas=(0.95, 0.999),
                                      weight_decay=cfg.weight_decay, eps=1e-8)
        # self.unet stays the bare module (EMA, saving); self._unet is what the forward pass runs (DDP-wrapped).
        self._unet, self.optimizer = self.acc.prepare(self.unet, optimizer)
        if on_gpu and cfg.compile:
            self._unet = torch.compile(self._unet)
        self.ema = warmup_ema(self.unet, cfg.ema_decay, power=0.75)
        self.step = 0

    def next_batch(self, clean: torch.Tensor, labels: torch.Tensor | None):
        """The next global training batch (cfg.batch_size images drawn with replacement, and their labels)."""
        idx = torch.randint(len(clean), (self.cfg.batch_size,), generator=self.gen)
        return clean[idx], None if labels is None else labels[idx]

    def train_step(self, clean: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
        """One epsilon-prediction MSE update on a global batch of images in [-1, 1] (labels for class-conditional).

        All randomness is drawn for the whole batch, then this process keeps its slice (all of it when alone).
        """
        cfg, batch = self.cfg, clean.shape[0]
        mine = dist.shard(self.acc, batch)
        if cfg.flip:
            flip = torch.rand(batch, generator=self.gen) < 0.5
            clean = torch.where(flip.reshape(-1, 1, 1, 1), clean.flip(-1), clean)
        class_labels = None
        if self.num_classes:
            class_labels = labels.clone().long()
            if cfg.cond_drop_prob > 0:
                drop = torch.rand(batch, generator=self.gen) < cfg.cond_drop_prob
                class_labels[drop] = self.num_classes  # the null class
            class_labels = class_labels[mine].to(self.device)
        timesteps = torch.randint(0, cfg.num_train_timesteps, (batch,), generator=self.gen)[mine].to(self.device)
        # Drawn on the CPU: the same curve on any device and any number of processes, and resumable.
        noise = torch.randn(clean.shape, generator=self.gen)[mine].to(self.device)
        clean = clean[mine].to(self.device)
        noisy = self.precision.memory_format(self.scheduler.add_noise(clean, noise, timesteps))
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * min(1.0, (self.step + 1) / max(cfg.lr_warmup_steps, 1))
        with self.precision.autocast():
            pred = self._unet(noisy, timesteps, class_labels=class_labels).sample
        loss = F.mse_loss(pred.float(), noise)
        self.optimizer.zero_grad(set_to_none=True)
        self.acc.backward(loss)  # DDP averages the gradients of the processes' equal slices: the global batch's
        self.acc.clip_grad_norm_(self.unet.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.step += 1
        self.ema.update(self.unet, step=self.step)  # every process keeps the same EMA; only rank 0 saves it
        return {**dist.mean_across(self.acc, {"loss": loss.item()}), "lr": self.optimizer.param_groups[0]["lr"],
                "ema_decay": self.ema.get_decay(self.step)}

    def ema_unet(self):
        """The U-Net holding the EMA weights (for grids and saving)."""
        return self.ema.module

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Everything needed to resume, as tensors and JSON scalars."""
        opt_tensors, opt_scalars = ckpt.optimizer_to_state(self.optimizer)
        tensors = {**ckpt.prefixed("unet", ckpt.module_tensors(self.unet)), **ckpt.prefixed("opt", opt_tensors),
                   **ckpt.prefixed("ema", ckpt.module_tensors(self.ema.module)),
                   **ckpt.prefixed("rng", {**ckpt.rng_to_tensors(), "train": self.gen.get_state()})}
        return tensors, {"step": self.step, "optimizer": opt_scalars}

    def load(self, tensors: dict[str, torch.Tensor], scalars: dict) -> None:
        """Restore a state saved by `state` (RNG included)."""
        self.unet.load_state_dict(ckpt.unprefixed("unet", tensors))
        ckpt.optimizer_from_state(self.optimizer, ckpt.unprefixed("opt", tensors), scalars["optimizer"])
        ema = ckpt.unprefixed("ema", tensors)
        if "ema" in scalars:  # written before ema.py, by diffusers' EMAModel: the shadow parameters in order
            with torch.no_grad():
                for param, saved in zip(self.ema.module.parameters(), (ema[str(i)] for i in range(len(ema)))):
                    param.copy_(saved)
        else:
            self.ema.module.load_state_dict(ema)
        self.step = int(scalars["step"])
        rng = ckpt.unprefixed("rng", tensors)
        ckpt.rng_from_tensors(rng)
        if "train" in rng:
            self.gen.set_state(rng["train"].to(torch.uint8).cpu())


class DdpmRun(TrainerRun):
    """A DdpmTrainer bound to one unit's training images: the step and sample functions the driver calls."""

    def train_step(self) -> dict[str, float]:
        """One denoising update on the next global batch."""
        return self.trainer.train_step(*self.trainer.next_batch(self.images, self.labels))

    def sample_grid(self) -> tuple[np.ndarray, list[str]]:
        """EMA samples from fixed noise, grid_per_class per class."""
        trainer, classes = self.trainer, self.classes
        per_class = trainer.cfg.grid_per_class
        n = per_class * len(classes)
        labels = torch.arange(len(classes)).repeat_interleave(per_class) if trainer.num_classes else None
        x = denoise(trainer.ema_unet(), trainer.scheduler.config, trainer.cfg, labels, n,
                    torch.Generator().manual_seed(1234), trainer.device, trainer.num_classes)
        return to_uint8(x), [classes[i // per_class] for i in range(n)]

    def export(self, folder: Path) -> None:
        """The EMA U-Net and the training scheduler, the model that sampling loads."""
        self.trainer.ema_unet().save_pretrained(folder / "unet", safe_serialization=True)
        self.trainer.scheduler.save_pretrained(folder / "scheduler")


@torch.no_grad()
def denoise(unet, train_scheduler_config, cfg: DdpmConfig, labels: torch.Tensor | None, n: int,
            generator: torch.Generator, device: str, num_classes: int) -> torch.Tensor:
    """Run the configured sampler from pure noise: n images [n, 1, R, R] in [-1, 1] (noise from `generator`)."""
    sampler = build_sampler(cfg.sampler, train_scheduler_config)
    sampler.set_timesteps(cfg.sample_steps)
    x = torch.randn(n, 1, cfg.resolution, cfg.resolution, generator=generator).to(device) * sampler.init_noise_sigma
    guided = labels is not None and cfg.guidance_scale > 1 and cfg.cond_drop_prob > 0
    if labels is not None:
        labels = labels.to(device)
        if guided:
            labels = torch.cat([labels, torch.full_like(labels, num_classes)])
    precision = precision_for(device, cfg.amp, fp16_fallback=False)  # as in training
    for t in sampler.timesteps:
        inp = sampler.scale_model_input(x, t)
        if guided:
            inp = torch.cat([inp, inp])
        with precision.autocast():
            eps = unet(inp, t.to(device), class_labels=labels).sample.float()
        if guided:
            cond, uncond = eps.chunk(2)
            eps = uncond + cfg.guidance_scale * (cond - uncond)
        x = sampler.step(eps, t, x, generator=generator).prev_sample
    return x.clamp(-1, 1)


@register_generator("ddpm", DdpmConfig, distributed=True)
class Ddpm:
    """Pixel-space DDPM: class-conditional (class embeddings) or one unconditional model per class."""

    def __init__(self):
        self._loaded: dict[tuple, tuple] = {}

    def train(self, params: DdpmConfig, per_class: bool, data: TrainImages, work_dir: Path, hooks: TrainHooks,
              device: str, seed: int) -> TrainOutcome:
        """Train (or resume) every model in `work_dir`; stops early, with a checkpoint, when hooks.should_stop()."""
        def make_run(unit: Unit, images: np.ndarray, labels: np.ndarray | None, index: int) -> DdpmRun:
            trainer = DdpmTrainer(params, len(unit.classes) if labels is not None else 0, device, seed + index)
            return DdpmRun(trainer, unit.classes, images, labels)

        return train_image_models("ddpm", params, per_class, data, work_dir, hooks, device, make_run)

    def _load_for_sampling(self, checkpoint: Path, class_name: str, device: str):
        """(unet, scheduler config, params, label index or None, number of classes) for a class, cached."""
        from diffusers import DDPMScheduler, UNet2DModel

        found = sampling_unit(checkpoint, class_name, "DDPM")
        key = (str(found.checkpoints.resolve()), device)
        if key not in self._loaded:
            saved = found.newest()
            unet = UNet2DModel.from_pretrained(saved.path / "unet").to(device).eval()
            scheduler = DDPMScheduler.from_pretrained(saved.path / "scheduler")
            self._loaded = {key: (unet, scheduler.config, DdpmConfig(**found.manifest["params"]))}
        unet, sched_config, cfg = self._loaded[key]
        num_classes = 0 if found.label is None else len(found.manifest["classes"])
        return unet, sched_config, cfg, found.label, num_classes

    def sample(self, checkpoint: Path, class_name: str, n: int, seed: int, device: str) -> np.ndarray:
        """n uint8 images [n, R, R] of one class with the configured sampler; the same seed gives the same images."""
        unet, sched_config, cfg, label, num_classes = self._load_for_sampling(checkpoint, class_name, device)
        generator = torch.Generator().manual_seed(seed)
        out = []
        for start in range(0, n, cfg.sample_batch_size):
            size = min(cfg.sample_batch_size, n - start)
            labels = None if label is None else torch.full((size,), label, dtype=torch.long)
            out.append(to_uint8(denoise(unet, sched_config, cfg, labels, size, generator, device, num_classes)))
        return np.concatenate(out) if out else np.zeros((0, cfg.resolution, cfg.resolution), dtype=np.uint8)
