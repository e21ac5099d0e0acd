"""Training one classifier on in-memory arrays: Adam(W), cosine schedule, AMP on GPU, mild augmentation.

After every epoch the model is scored on the validation split and the checkpoint with the lowest validation loss
is kept as `best.safetensors` (the test split is never seen here). The resumable checkpoint `last/` is written at
every epoch end and whenever the caller asks to stop, and a later call with the same `work_dir` continues from it:
same global step, same RNG, so an interrupted run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xaug.engine.classifiers import checkpoint as ckpt
from xaug.engine.classifiers.inputs import augment_batch, make_augmentation, normalise, to_unit
from xaug.engine.classifiers.registry import create_classifier, input_stats
from xaug.engine.errors import DataError
from xaug.engine.recipe.schema import ClassifierSpec


@dataclass(frozen=True)
class TrainData:
    """Training and validation images (grey uint8 [N,S,S], already at the model's input size) and labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray


class TrainCallbacks:
    """What training reports to its caller; the defaults do nothing (the train_classifier job overrides them)."""

    def metrics(self, step: int, values: dict[str, float]) -> None:
        """Curve points at a global step: train_loss and lr every step, val_loss/val_accuracy every epoch."""

    def progress(self, done: int, total: int) -> None:
        """Steps done out of the total."""

    def should_stop(self) -> bool:
        """True when training must save its state and return early."""
        return False

    def starting_at(self, step: int) -> None:
        """Training (re)starts at global `step` (0, or a checkpoint's): curve points recorded after it are stale."""


@dataclass(frozen=True)
class TrainOutcome:
    """What `train_classifier` returns."""

    finished: bool
    """False when it stopped early because `should_stop()` said so (the last checkpoint is saved)."""
    step: int
    total_steps: int
    best_epoch: int | None
    """1-based epoch of the best validation loss."""
    best_val_loss: float | None
    best_checkpoint: Path


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A seeded shuffle of range(n) cut into batches; a trailing batch of one joins the previous one (BatchNorm)."""
    perm = torch.randperm(n, generator=generator)
    batches = list(perm.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2] = torch.cat([batches[-2], batches.pop()])
    return batches


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps in one epoch over n images."""
    steps = math.ceil(n / batch_size)
    return steps - 1 if steps > 1 and n % batch_size == 1 else steps


def _epoch_seed(seed: int, epoch: int) -> int:
    """The RNG seed of one epoch's shuffle and augmentation, independent of what ran before (resumable)."""
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**63)


def _autocast_dtype(device: str, amp: bool) -> torch.dtype | None:
    """bf16 where the GPU supports it, fp16 on older GPUs, no autocast on CPU or when amp is off."""
    if not amp or not device.startswith("cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def make_optimizer(spec: ClassifierSpec, model: nn.Module) -> torch.optim.Optimizer:
    """Adam with the spec's learning rate, or AdamW when weight decay is set."""
    if spec.weight_decay > 0:
        return torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=spec.lr)


@torch.no_grad()
def predict_probs(model: nn.Module, images: np.ndarray, in_chans: int, mean: list[float], std: list[float],
                  device: str, amp: bool = False, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities float32 [N,C] for grey uint8 images [N,S,S] (eval mode, no augmentation)."""
    model.eval()
    dtype = _autocast_dtype(device, amp)
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
        x = normalise(to_unit(x), in_chans, mean, std)
        with torch.autocast(device_type="cuda", dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency loss weights (N / (C * n_c)), so that every class counts the same; 0 for absent classes."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def validate(model: nn.Module, images: np.ndarray, labels: np.ndarray, in_chans: int, mean: list[float],
             std: list[float], device: str, amp: bool, weight: torch.Tensor | None = None) -> tuple[float, float]:
    """Mean (optionally class-weighted) cross-entropy and accuracy on a held-out split."""
    probs = torch.from_numpy(predict_probs(model, images, in_chans, mean, std, device, amp))
    target = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), target, weight=weight).item()
    accuracy = (probs.argmax(1) == target).float().mean().item()
    return loss, accuracy


def _training_batch(images: torch.Tensor, transform, in_chans: int, mean: list[float], std: list[float],
                    device: str) -> torch.Tensor:
    """uint8 [B,H,W] -> augmented (when `transform`), normalised float [B,in_chans,H,W] on `device`."""
    x = to_unit(images.to(device))
    if transform is not None:
        x = augment_batch(x, transform)
    return normalise(x, in_chans, mean, std)


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, scaler: torch.amp.GradScaler,
                x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype | None, weight: torch.Tensor | None) -> float:
    """One optimizer step (autocast and loss scaling as configured); returns the batch loss."""
    with torch.autocast(device_type="cuda", dtype=dtype, enabled=dtype is not None):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y, weight=weight)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss.item()


def _check_data(data: TrainData, num_classes: int) -> None:
    """Fail early, with a clear message, on empty splits or labels outside the classes."""
    for name, images, labels in (("training", data.train_images, data.train_labels),
                                 ("validation", data.val_images, data.val_labels)):
        if len(images) == 0:
            raise DataError(f"the {name} split is empty; use more images or a larger validation_fraction")
        if len(images) != len(labels):
            raise DataError(f"the {name} split has {len(images)} images but {len(labels)} labels")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise DataError(f"the {name} split has labels outside 0..{num_classes - 1}")


def train_classifier(spec: ClassifierSpec, classes: list[str], data: TrainData, work_dir: Path, *, seed: int,
                     device: str = "cpu", amp: bool = True, callbacks: TrainCallbacks | None = None) -> TrainOutcome:
    """Train (or resume) a classifier in `work_dir`; returns where it stopped and the best checkpoint."""
    callbacks = callbacks or TrainCallbacks()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    _check_data(data, len(classes))
    torch.manual_seed(seed)
    model = create_classifier(spec, len(classes)).to(device)
    mean, std = input_stats(model, spec.in_chans)
    optimizer = make_optimizer(spec, model)
    per_epoch = steps_per_epoch(len(data.train_images), spec.batch_size)
    total = spec.epochs * per_epoch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    dtype = _autocast_dtype(device, amp)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    meta = dict(model=spec.model, classes=list(classes), in_chans=spec.in_chans, mean=mean, std=std,
                image_size=int(data.train_images.shape[-1]), seed=seed, model_kwargs=spec.model_kwargs)

    loop = ckpt.LoopState()
    last_path, best_path = work_dir / ckpt.LAST, work_dir / ckpt.BEST
    if ckpt.has_training_state(last_path):
        loop, _ = ckpt.load_training_state(last_path, model, optimizer, scheduler, scaler)
    callbacks.starting_at(loop.step)

    images = torch.from_numpy(np.ascontiguousarray(data.train_images))
    labels = torch.from_numpy(np.asarray(data.train_labels, dtype=np.int64))
    # Optional (recipe: class_balanced): without it a tiny model on ~200 imbalanced images predicts the majority.
    weight = class_weights(data.train_labels, len(classes)) if getattr(spec, "class_balanced", False) else None
    device_weight = None if weight is None else weight.to(device)
    transform = make_augmentation() if spec.augment else None

    def save_last() -> None:
        ckpt.save_training_state(last_path, model, optimizer, scheduler, scaler, loop, meta)

    while loop.epoch < spec.epochs:
        batches = _batches(len(images), spec.batch_size, torch.Generator().manual_seed(_epoch_seed(seed, loop.epoch)))
        if loop.batch == 0:
            torch.manual_seed(_epoch_seed(seed, loop.epoch))  # mid-epoch resumes restored the RNG instead
        model.train()
        while loop.batch < len(batches):
            if callbacks.should_stop():
                save_last()
                return _outcome(False, loop, total, best_path)
            lr = optimizer.param_groups[0]["lr"]
            x = _training_batch(images[batches[loop.batch]], transform, spec.in_chans, mean, std, device)
            y = labels[batches[loop.batch]].to(device)
            loss = _train_step(model, optimizer, scheduler, scaler, x, y, dtype, device_weight)
            loop.batch += 1
            loop.step += 1
            callbacks.metrics(loop.step, {"train_loss": loss, "lr": lr})
            callbacks.progress(loop.step, total)

        val_loss, val_accuracy = validate(model, data.val_images, data.val_labels, spec.in_chans, mean, std,
                                          device, amp, weight)
        loop.epoch += 1
        loop.batch = 0
        callbacks.metrics(loop.step, {"val_loss": val_loss, "val_accuracy": val_accuracy, "epoch": loop.epoch})
        if loop.best_val_loss is None or val_loss < loop.best_val_loss:
            loop.best_val_loss, loop.best_epoch = val_loss, loop.epoch
            ckpt.save_weights(model, best_path, dict(meta, epoch=loop.epoch, val_loss=val_loss,
                                                     val_accuracy=val_accuracy))
        save_last()
        if loop.epoch < spec.epochs and callbacks.should_stop():
            return _outcome(False, loop, total, best_path)
    return _outcome(True, loop, total, best_path)


def _outcome(finished: bool, loop: ckpt.LoopState, total: int, best_path: Path) -> TrainOutcome:
    """A TrainOutcome from the loop state."""
    return TrainOutcome(finished=finished, step=loop.step, total_steps=total, best_epoch=loop.best_epoch,
                        best_val_loss=loop.best_val_loss, best_checkpoint=best_path)
