"""A StyleGAN2-ADA-style GAN for grey-scale images (`model: gan`): trained through the driver, sampled per class.

The pieces: gan_config.py (params), gan_networks.py (G and D), gan_augment.py (adaptive discriminator
augmentation), gan_trainer.py (one model's step, EMA, ADA and state). Class-conditional (projection D) or one
model per class.

Checkpoint layout in `work_dir`: `generator.json` (what was trained), and per model (`all`, or one per class)
`<unit>/checkpoints/` (engine/checkpoint.py: atomic folders with G, D, EMA, both optimizers, ADA p, step and
RNG; sampling reads the EMA generator's tensors from the newest one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xaug.engine.generators.base import TrainHooks, TrainImages, TrainOutcome
from xaug.engine.generators.driver import Unit, sampling_unit, train_image_models
from xaug.engine.generators.gan_config import GanConfig
from xaug.engine.generators.gan_trainer import GanRun, GanTrainer
from xaug.engine.generators.registry import register_generator
from xaug.engine.generators.samples import to_uint8


@register_generator("gan", GanConfig)
class StyleGan:
    """StyleGAN2-ADA-style GAN: class-conditional (projection D) or one model per class."""

    def __init__(self):
        self._loaded: dict[tuple, GanTrainer] = {}

    def train(self, params: GanConfig, per_class: bool, data: TrainImages, work_dir: Path, hooks: TrainHooks,
              device: str, seed: int) -> TrainOutcome:
        """Train (or resume) every model in `work_dir`; stops early, with a checkpoint, when hooks.should_stop()."""
        def make_run(unit: Unit, images: np.ndarray, labels: np.ndarray | None, index: int) -> GanRun:
            trainer = GanTrainer(params, len(unit.classes) if labels is not None else 0, device, seed + index)
            return GanRun(trainer, unit.classes, images, labels)

        return train_image_models("gan", params, per_class, data, work_dir, hooks, device, make_run)

    def _load_for_sampling(self, checkpoint: Path, class_name: str, device: str) -> tuple[GanTrainer, int | None]:
        """The EMA generator for a class (cached), and its label index when class-conditional."""
        found = sampling_unit(checkpoint, class_name, "GAN")
        key = (str(found.checkpoints.resolve()), device)
        if key not in self._loaded:
            manifest = found.manifest
            cfg = GanConfig(**manifest["params"])
            trainer = GanTrainer(cfg, 0 if manifest["per_class"] else len(manifest["classes"]), device, seed=0)
            trainer.G_ema.load_state_dict(found.newest().tensors(device, prefix="G_ema"))
            self._loaded = {key: trainer}  # keep one model in memory at a time
        return self._loaded[key], found.label

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
