"""The contract every generator fulfils: train on a fold's training images, then sample images per class.

Checkpoints are safetensors files or diffusers `save_pretrained` folders (never pickle), and a generator resumes
from its last checkpoint in `work_dir` with optimizer, EMA, augmentation state and RNG restored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np


@dataclass(frozen=True)
class TrainImages:
    """The training split of one fold: grey-scale uint8 images [N, H, W], integer labels [N], class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]

    def of_class(self, class_name: str) -> np.ndarray:
        """Images of one class."""
        return self.images[self.labels == self.classes.index(class_name)]


class TrainHooks(Protocol):
    """Callbacks a generator calls while training (the train_generator job implements them)."""

    def progress(self, step: int, total: int, losses: dict[str, float]) -> None:
        """Report step `step` of `total` and the step's losses (recorded as curves)."""

    def grid(self, step: int, images: np.ndarray, class_names: list[str]) -> None:
        """Record a periodic grid of samples (uint8 [n, H, W]) with the class of each image."""

    def should_stop(self) -> bool:
        """True when training must save a checkpoint and return early (it resumes later)."""


@dataclass(frozen=True)
class TrainOutcome:
    """What `train` returns: the checkpoint to sample from, and whether training finished."""

    checkpoint: Path
    finished: bool
    step: int


class GeneratorImpl(Protocol):
    """A registered generator implementation (see registry.register_generator)."""

    def train(self, params, per_class: bool, data: TrainImages, work_dir: Path, hooks: TrainHooks,
              device: str, seed: int) -> TrainOutcome:
        """Train (or resume) in `work_dir`; return the final checkpoint, or finished=False if stopped early. `data`
        comes at the prepared dataset's size: a generator brings it to its own resolution (data.resize)."""

    def sample(self, checkpoint: Path, class_name: str, n: int, seed: int, device: str) -> np.ndarray:
        """n grey-scale uint8 images [n, H, W] of one class, deterministic for a seed."""


ProgressFn = Callable[[int, int, dict], None]
