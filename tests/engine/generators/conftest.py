"""Fixtures for the GAN/DDPM tests: tiny seeded data, tiny configs, and train hooks that record what they get."""

from __future__ import annotations

import numpy as np
import pytest

from xaug.engine.generators.base import TrainImages


class RecordingHooks:
    """TrainHooks that keep every step's losses and grid, and ask to stop once `stop_after` steps are done."""

    def __init__(self, stop_after: int | None = None):
        self.stop_after = stop_after
        self.steps: list[int] = []
        self.losses: list[dict[str, float]] = []
        self.grids: list[tuple[int, np.ndarray, list[str]]] = []
        self.totals: set[int] = set()

    def progress(self, step, total, losses):
        self.steps.append(step)
        self.totals.add(total)
        self.losses.append(dict(losses))

    def grid(self, step, images, class_names):
        self.grids.append((step, images, list(class_names)))

    def should_stop(self):
        return self.stop_after is not None and bool(self.steps) and self.steps[-1] >= self.stop_after


@pytest.fixture
def tiny_data() -> TrainImages:
    """12 random 40x40 grey images of two classes with a visible brightness difference (resized to 32 by the models)."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 6)
    images = rng.integers(0, 120, (12, 40, 40)).astype(np.uint8) + (labels * 120).astype(np.uint8)[:, None, None]
    return TrainImages(images=images, labels=labels, classes=["healthy", "viral"])


@pytest.fixture
def recording_hooks():
    """A factory of RecordingHooks."""
    return RecordingHooks


TINY_GAN = dict(resolution=32, channels_base=256, channels_max=16, z_dim=16, w_dim=16, mapping_layers=2,
                batch_size=4, steps=2, r1_interval=2, grid_every=1000, grid_per_class=2, checkpoint_every=1000,
                ada_interval=1, ada_kimg=0.01, ada_p_init=0.2, sample_batch_size=3)
"""A GAN that trains a step in well under a second on one core (ADA p moves every step)."""

TINY_DDPM = dict(resolution=32, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8, attention=False,
                 batch_size=4, steps=2, lr_warmup_steps=0, grid_every=1000, grid_per_class=1, checkpoint_every=1000,
                 sample_steps=2, sample_batch_size=3, num_train_timesteps=50)
"""A DDPM U-Net of a few thousand parameters."""


@pytest.fixture
def tiny_gan_params():
    """Tiny GanConfig keyword arguments (copy before changing)."""
    return dict(TINY_GAN)


@pytest.fixture
def tiny_ddpm_params():
    """Tiny DdpmConfig keyword arguments (copy before changing)."""
    return dict(TINY_DDPM)
