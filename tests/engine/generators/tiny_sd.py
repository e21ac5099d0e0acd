"""A tiny random Stable Diffusion (32 px, local diffusers folder) for the SD generator tests, built once per run."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from xaug.engine.generators.base import TrainImages

CLASSES = ["healthy", "viral"]


@functools.lru_cache(maxsize=None)
def tiny_sd_dir(root: str) -> Path:
    """Build (once per session root) the tiny random SD under `root` and return its folder."""
    from xaug.engine.bench.sd_bench import write_random_sd

    return write_random_sd(Path(root) / "tiny-sd", arch="tiny", seed=0)


def tiny_images(n_per_class: int = 3, size: int = 40, seed: int = 0) -> TrainImages:
    """Random grey training images of two classes (not 32 px, so the resize path runs too)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_per_class * len(CLASSES), size, size), dtype=np.uint8)
    labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
    return TrainImages(images=images, labels=labels, classes=list(CLASSES))


class RecordingHooks:
    """Train hooks that record progress and grids, and ask to stop after `stop_at` steps (None: never)."""

    def __init__(self, stop_at: int | None = None):
        self.stop_at = stop_at
        self.steps: list[int] = []
        self.losses: list[dict] = []
        self.grids: list[tuple[int, np.ndarray, list[str]]] = []

    def progress(self, step, total, losses):
        self.steps.append(step)
        self.losses.append(dict(losses))

    def grid(self, step, images, class_names):
        self.grids.append((step, images, list(class_names)))

    def should_stop(self):
        return self.stop_at is not None and len(self.steps) >= self.stop_at
