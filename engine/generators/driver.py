"""The one training driver of every generator: models in turn, and each model's step loop.

A generator supplies a `StepModel` (its step and sample functions, its state) and the driver does the rest, the
same way for the GAN, the DDPM and the Stable Diffusion family:

- `train_units`: one model for all classes (unit 'all') or one per class, trained in turn; a step counter that
  runs across units (progress shows one bar); stops between units when asked; `checked_units` fails on a class
  without images before anything loads or trains. `train_image_models` adds what the pixel-space generators (GAN,
  DDPM) share: `generator.json`, `<unit>/checkpoints/` and `TrainerRun`; `sampling_unit` reads them back to sample.
- `train_steps`: resume from the newest checkpoint (engine/checkpoint.py), then step to `steps`: progress and
  losses after every step, a grid every `grid_every` steps and at the last, an atomic checkpoint every
  `checkpoint_every` steps; when asked to stop, a checkpoint (unless one was just written) and return; after the
  last step `finish` (by default a final checkpoint, which is what sampling reads).

Under several DDP processes (distributed.py) every process runs the same loop: all draw the same global batch and
keep their slice, all agree on when to stop, and only rank 0 reports, draws grids and writes checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from xaug.engine import checkpoint as ckpt
from xaug.store.errors import DataError
from xaug.engine.generators import distributed as dist
from xaug.engine.generators.base import TrainHooks, TrainImages, TrainOutcome
from xaug.store.artifacts import artifact_path


class Cadence(Protocol):
    """The step counts a generator's params give the driver."""

    steps: int
    grid_every: int
    checkpoint_every: int


class StepModel(Protocol):
    """What one model gives the driver: its step and sample functions and its resumable state."""

    acc: Any
    """This process's accelerate.Accelerator (one process, or one rank of a DDP group)."""

    def train_step(self) -> dict[str, float]:
        """Draw the next batch and take one optimizer step; the step's losses (the same on every process)."""

    def sample_grid(self) -> tuple[np.ndarray, list[str]]:
        """Images (uint8 [n, H, W]) of the weights being trained, and the class of each, for a progress grid."""

    def state(self) -> tuple[dict, dict]:
        """Everything needed to resume, as named tensors and JSON scalars."""

    def export(self, folder: Path) -> None:
        """Write extra files into a checkpoint folder (diffusers save_pretrained folders), or nothing."""

    def load(self, saved: ckpt.Checkpoint) -> None:
        """Restore the state of a checkpoint written by `state` and `export` (RNG included)."""


@dataclass(frozen=True)
class Unit:
    """One model to train: all classes (name 'all', class-conditional) or one class (per-class training)."""

    name: str
    classes: list[str]


def units_for(classes: list[str], per_class: bool) -> list[Unit]:
    """One unit per class, or one unit 'all' with every class."""
    return [Unit(c, [c]) for c in classes] if per_class else [Unit("all", list(classes))]


def checked_units(data: TrainImages, per_class: bool) -> list[Unit]:
    """`units_for` the data's classes, after checking that every unit has training images: a class without any
    fails before a base model loads or an earlier unit trains for hours."""
    units = units_for(data.classes, per_class)
    for unit in units:
        unit_images(data, unit)
    return units


def unit_images(data: TrainImages, unit: Unit) -> tuple[np.ndarray, np.ndarray | None]:
    """A unit's training images, and their labels when it is class-conditional; DataError for a class without any."""
    if unit.name == "all":
        return data.images, data.labels
    images = data.of_class(unit.name)
    if len(images) == 0:
        raise DataError(f"class '{unit.name}' has no training images in this fold, so no per-class model can be "
                        "trained for it; use per_class: false or fewer folds")
    return images, None


def write_manifest(work_dir: Path, model: str, params, per_class: bool, classes: list[str],
                   units: list[Unit]) -> None:
    """Write `generator.json`, what `sample` needs besides the checkpoints (rank 0 only, under DDP)."""
    if dist.is_main_process():
        ckpt.write_json(Path(work_dir) / "generator.json", {
            "model": model, "per_class": per_class, "classes": list(classes), "params": params.model_dump(),
            "units": [u.name for u in units]})


@dataclass(frozen=True)
class SamplingUnit:
    """What sampling one class of a pixel-space generator needs from its `generator.json`."""

    manifest: dict
    unit: str
    """'all' (class-conditional) or the class itself (one model per class)."""
    label: int | None
    """The class's index for a class-conditional model; None for a per-class one."""
    checkpoints: Path
    """The unit's checkpoint folder (`<unit>/checkpoints/`)."""

    def newest(self) -> ckpt.Checkpoint:
        """The unit's newest checkpoint; CheckpointError when training never wrote one."""
        saved = ckpt.load_checkpoint(self.checkpoints)
        if saved is None:
            raise ckpt.CheckpointError(f"{self.checkpoints} holds no checkpoint: train_generator did not finish")
        return saved


def sampling_unit(checkpoint: Path, class_name: str, what: str) -> SamplingUnit:
    """The model that samples `class_name` from a generator trained by `train_image_models` (`what`: 'GAN',
    'DDPM', for messages); DataError for a class it was not trained on."""
    manifest = ckpt.read_json(Path(checkpoint) / "generator.json")
    classes = manifest["classes"]
    if class_name not in classes:
        raise DataError(f"class '{class_name}' is not one of this {what}'s classes ({', '.join(classes)}); "
                        f"checkpoint {checkpoint}")
    per_class = manifest["per_class"]
    unit = class_name if per_class else "all"
    return SamplingUnit(manifest, unit, None if per_class else classes.index(class_name),
                        artifact_path(Path(checkpoint), unit, ckpt.CHECKPOINTS))


class TrainerRun:
    """A trainer (GanTrainer, DdpmTrainer) bound to one unit's images in [-1, 1]: the state half of a StepModel;
    subclasses add `train_step` and `sample_grid`."""

    def __init__(self, trainer, classes: list[str], images: np.ndarray, labels: np.ndarray | None):
        import torch

        from xaug.engine.data.resize import resize_images
        from xaug.engine.generators.samples import to_model_range

        self.trainer, self.classes = trainer, classes
        self.images = to_model_range(resize_images(images, trainer.cfg.resolution))
        self.labels = torch.from_numpy(np.asarray(labels)).long() if labels is not None else None
        self.acc = getattr(trainer, "acc", None) or dist.accelerator_for(trainer.device)

    def state(self) -> tuple[dict, dict]:
        """The trainer's state."""
        return self.trainer.state()

    def export(self, folder: Path) -> None:
        """Nothing beyond the state by default."""

    def load(self, saved: ckpt.Checkpoint) -> None:
        """Restore the trainer from a checkpoint."""
        self.trainer.load(saved.tensors(self.trainer.device), saved.scalars)


def train_image_models(model: str, params, per_class: bool, data: TrainImages, work_dir: Path, hooks: TrainHooks,
                       device: str, make_run: Callable[[Unit, np.ndarray, np.ndarray | None, int], TrainerRun]
                       ) -> TrainOutcome:
    """Train a pixel-space generator's models (GAN, DDPM): `generator.json`, then per unit `make_run(unit, images,
    labels or None, index)` trained by `train_steps` with checkpoints in `<unit>/checkpoints/`."""
    work_dir = Path(work_dir)
    units = checked_units(data, per_class)
    write_manifest(work_dir, model, params, per_class, data.classes, units)

    def train_unit(unit: Unit, index: int, offset: int, total: int) -> int:
        run = make_run(unit, *unit_images(data, unit), index)
        return train_steps(run, params, artifact_path(work_dir, unit.name, ckpt.CHECKPOINTS), hooks, offset, total)

    return train_units(units, params.steps, work_dir, hooks, device, train_unit)


TrainUnit = Callable[[Unit, int, int, int], int]
"""train_unit(unit, index, step_offset, total_steps) -> the unit's step reached (params.steps when finished)."""


def train_units(units: list[Unit], steps: int, checkpoint: Path, hooks: TrainHooks, device: str,
                train_unit: TrainUnit) -> TrainOutcome:
    """Train every unit in turn; unfinished (a later run resumes) as soon as one stops early or a stop is asked
    for between units. `checkpoint` is what the outcome names for sampling."""
    total = steps * len(units)
    for index, unit in enumerate(units):
        offset = index * steps
        # A stop that came while the previous unit finished (all DDP processes must agree on it).
        if index > 0 and dist.agreed_stop(dist.accelerator_for(device), hooks.should_stop()):
            return TrainOutcome(checkpoint=checkpoint, finished=False, step=offset)
        step = train_unit(unit, index, offset, total)
        if step < steps:
            return TrainOutcome(checkpoint=checkpoint, finished=False, step=offset + step)
    return TrainOutcome(checkpoint=checkpoint, finished=True, step=total)


def train_steps(model: StepModel, cadence: Cadence, root: Path, hooks: TrainHooks, offset: int = 0,
                total: int | None = None, finish: Callable[[], None] | None = None) -> int:
    """Resume `model` from the newest checkpoint under `root` and train it to `cadence.steps` (see the module
    docstring); hooks see steps `offset + step` of `total`. Returns the step reached."""
    acc = model.acc
    main = acc.is_main_process  # under DDP only rank 0 reports, samples grids and saves
    resumed = ckpt.resume_checkpoint(root)
    step = 0
    if resumed is not None:
        model.load(resumed)
        step = resumed.step
    if step >= cadence.steps:
        return step
    total = cadence.steps if total is None else total

    def save() -> None:
        ckpt.save_checkpoint(root, step, *model.state(), fill=model.export)

    while step < cadence.steps:
        losses = model.train_step()
        step += 1
        if main:
            hooks.progress(offset + step, total, losses)
        if main and (step % cadence.grid_every == 0 or step == cadence.steps):
            hooks.grid(offset + step, *model.sample_grid())
        if step == cadence.steps:
            break
        saved = step % cadence.checkpoint_every == 0
        if main and saved:
            save()
        if dist.agreed_stop(acc, hooks.should_stop()):
            if main and not saved:
                save()
            acc.wait_for_everyone()
            return step
    if main:
        (finish or save)()
    acc.wait_for_everyone()  # no rank moves on before rank 0 has written the final state
    return step
