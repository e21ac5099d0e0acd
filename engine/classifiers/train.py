"""Training one classifier on in-memory arrays: Adam(W), cosine schedule, AMP on GPU (engine/precision.py), an
augmentation preset.

Every arm of one classifier trains the same number of optimiser steps (`batches.py`: the baseline's epochs over the
real training split), drawing its batches from the real images and the arm's added ones. Every `val_every_steps`
steps (default: one real epoch) and at the last step the model is scored on the validation split, and the
checkpoint with the lowest validation loss is kept as `best.safetensors` (the test split is never seen here).
The resumable checkpoint `last/` (engine/checkpoint.py) is written at every validation and whenever the caller asks
to stop, and a later call with the same `work_dir` continues from it: same step, same RNG, same batches, so an
interrupted run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xaug.engine.classifiers import checkpoint as ckpt
from xaug.engine.classifiers.augment import augment_batch, make_augmentation
from xaug.engine.classifiers.batches import BatchPlan, step_budget, steps_per_epoch, validation_interval
from xaug.engine.classifiers.inputs import normalise, to_unit
from xaug.engine.classifiers.registry import create_classifier, input_stats
from xaug.store.errors import DataError
from xaug.engine.precision import Precision, precision_for
from xaug.engine.recipe.schema import ClassifierSpec


@dataclass(frozen=True)
class TrainData:
    """Grey uint8 images [N,S,S] (already at the model's input size) and labels: the fold's real training and
    validation splits, and the images the arm adds to training (none for the baseline)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    added_images: np.ndarray | None = None
    """Synthetic or duplicated real images of the arm: they change what batches hold, never how many steps run."""
    added_labels: np.ndarray | None = None

    @property
    def n_added(self) -> int:
        """Number of added images."""
        return 0 if self.added_images is None else len(self.added_images)

    def pool(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Real then added training images (uint8 [N,S,S]) and labels (int64 [N]), as BatchPlan indexes them."""
        images = [self.train_images] + ([] if self.added_images is None else [self.added_images])
        labels = [self.train_labels] + ([] if self.added_labels is None else [self.added_labels])
        return (torch.from_numpy(np.ascontiguousarray(np.concatenate(images))),
                torch.from_numpy(np.concatenate(labels).astype(np.int64)))


class TrainCallbacks:
    """What training reports to its caller; the defaults do nothing (the train_classifier job overrides them)."""

    def metrics(self, step: int, values: dict[str, float]) -> None:
        """Curve points at a global step: train_loss and lr every step; val_loss, val_accuracy and epoch (real
        epochs done: step / steps of one real epoch) at every validation."""

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
    """Optimiser steps done: total_steps when finished."""
    total_steps: int
    """The step budget, the same for every arm of one classifier on one fold."""
    best_step: int | None
    """Step of the lowest validation loss (the checkpoint kept as best)."""
    best_val_loss: float | None
    best_checkpoint: Path


def make_optimizer(spec: ClassifierSpec, model: nn.Module) -> torch.optim.Optimizer:
    """Adam with the spec's learning rate, or AdamW when weight decay is set."""
    if spec.weight_decay > 0:
        return torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=spec.lr)


@torch.no_grad()
def predict_probs(model: nn.Module, images: np.ndarray, in_chans: int, mean: list[float], std: list[float],
                  device: str, amp: bool = False, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities float32 [N,C] for grey uint8 images [N,S,S] (eval mode, no augmentation)."""
    precision = precision_for(device, amp, channels_last=True)
    model = precision.memory_format(model).eval()  # the model's layout follows its inputs' (a no-op on the CPU)
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
        x = normalise(to_unit(x), in_chans, mean, std)
        with precision.autocast():
            logits = model(precision.memory_format(x))
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency loss weights (N / (C * n_c)), so that every class counts the same; 0 for absent classes."""
    return _inverse_share_weights(_class_shares(labels, num_classes))


def sampled_class_weights(data: TrainData, plan: BatchPlan, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights of the class mix that batches hold: the pool's, or, with a fixed real:added
    ratio, the real and the added images' class shares mixed in that ratio."""
    added = plan.added_per_batch
    if added is None:
        return class_weights(data.pool()[1].numpy(), num_classes)
    fraction = added / plan.batch_size
    shares = ((1 - fraction) * _class_shares(data.train_labels, num_classes)
              + fraction * _class_shares(data.added_labels, num_classes))
    return _inverse_share_weights(shares)


def _class_shares(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Fraction of the labels in each class."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def _inverse_share_weights(shares: np.ndarray) -> torch.Tensor:
    """1 / (C * share) per class, 0 for classes that never appear."""
    weights = np.where(shares > 0, 1.0 / (len(shares) * np.where(shares > 0, shares, 1.0)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def validate(model: nn.Module, images: np.ndarray, labels: np.ndarray, in_chans: int, mean: list[float],
             std: list[float], device: str, amp: bool, weight: torch.Tensor | None = None) -> tuple[float, float]:
    """Mean (optionally class-weighted) cross-entropy and accuracy on a held-out split."""
    probs = torch.from_numpy(predict_probs(model, images, in_chans, mean, std, device, amp))
    target = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), target, weight=weight).item()
    accuracy = (probs.argmax(1) == target).float().mean().item()
    return loss, accuracy


def training_batch(images: torch.Tensor, augmentation: nn.Module | None, in_chans: int, mean: list[float],
                   std: list[float], device: str) -> torch.Tensor:
    """uint8 [B,H,W] -> augmented (unless `augmentation` is None), normalised float [B,in_chans,H,W] on `device`."""
    x = to_unit(images.to(device))
    if augmentation is not None:
        x = augment_batch(x, augmentation)
    return normalise(x, in_chans, mean, std)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, scaler: torch.amp.GradScaler,
                x: torch.Tensor, y: torch.Tensor, precision: Precision, weight: torch.Tensor | None) -> float:
    """One optimizer step (autocast, loss scaling and memory format as configured); returns the batch loss."""
    with precision.autocast():
        logits = model(precision.memory_format(x))
    loss = F.cross_entropy(logits.float(), y, weight=weight)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss.item()


def _check_data(data: TrainData, num_classes: int) -> None:
    """Fail early, with a clear message, on empty splits, mismatched labels or labels outside the classes."""
    parts = [("training", data.train_images, data.train_labels), ("validation", data.val_images, data.val_labels)]
    if data.added_images is not None:
        parts.append(("added", data.added_images, data.added_labels))
    for name, images, labels in parts:
        if len(images) == 0 and name != "added":
            raise DataError(f"the {name} split is empty; use more images or a larger validation_fraction")
        if labels is None or len(images) != len(labels):
            raise DataError(f"the {name} images are {len(images)} but have {0 if labels is None else len(labels)}"
                            " labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(f"the {name} images have labels outside 0..{num_classes - 1}")


def train_classifier(spec: ClassifierSpec, classes: list[str], data: TrainData, work_dir: Path, *, seed: int,
                     device: str = "cpu", amp: bool = True, callbacks: TrainCallbacks | None = None) -> TrainOutcome:
    """Train (or resume) a classifier in `work_dir` for its step budget; returns where it stopped and the best
    checkpoint."""
    callbacks = callbacks or TrainCallbacks()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    _check_data(data, len(classes))
    n_real = len(data.train_images)
    plan = BatchPlan.for_run(spec, n_real, data.n_added, seed)
    total, val_every = step_budget(spec, n_real), validation_interval(spec, n_real)
    real_epoch = steps_per_epoch(n_real, spec.batch_size)
    torch.manual_seed(seed)
    precision = precision_for(device, amp, channels_last=True)
    model = precision.memory_format(create_classifier(spec, len(classes)).to(device))
    mean, std = input_stats(model, spec.in_chans)
    optimizer = make_optimizer(spec, model)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    scaler = precision.grad_scaler()
    meta = dict(model=spec.model, classes=list(classes), in_chans=spec.in_chans, mean=mean, std=std,
                image_size=int(data.train_images.shape[-1]), seed=seed, model_kwargs=spec.model_kwargs)

    loop = ckpt.LoopState()
    last_path, best_path = work_dir / ckpt.LAST, work_dir / ckpt.BEST
    if ckpt.has_training_state(last_path):
        loop, _ = ckpt.load_training_state(last_path, model, optimizer, scheduler, scaler)
    callbacks.starting_at(loop.step)

    images, labels = data.pool()
    # Optional (recipe: class_balanced): without it a tiny model on ~200 imbalanced images predicts the majority.
    weight = sampled_class_weights(data, plan, len(classes)) if spec.class_balanced else None
    device_weight = None if weight is None else weight.to(device)
    augmentation = make_augmentation(spec.augment)

    def save_last() -> None:
        ckpt.save_training_state(last_path, model, optimizer, scheduler, scaler, loop, meta)

    model.train()
    while loop.step < total:
        if callbacks.should_stop():
            save_last()
            return _outcome(False, loop, total, best_path)
        batch = plan.indices(loop.step)
        lr = optimizer.param_groups[0]["lr"]
        x = training_batch(images[batch], augmentation, spec.in_chans, mean, std, device)
        loss = train_step(model, optimizer, scheduler, scaler, x, labels[batch].to(device), precision,
                          device_weight)
        loop.step += 1
        callbacks.metrics(loop.step, {"train_loss": loss, "lr": lr})
        callbacks.progress(loop.step, total)
        if loop.step % val_every == 0 or loop.step == total:
            _validate_and_keep_best(model, data, loop, spec, mean, std, device, amp, weight, best_path,
                                    dict(meta, epoch=round(loop.step / real_epoch, 4)), callbacks)
            model.train()
            save_last()
            if loop.step < total and callbacks.should_stop():
                return _outcome(False, loop, total, best_path)
    return _outcome(True, loop, total, best_path)


def _validate_and_keep_best(model: nn.Module, data: TrainData, loop: ckpt.LoopState, spec: ClassifierSpec,
                            mean: list[float], std: list[float], device: str, amp: bool,
                            weight: torch.Tensor | None, best_path: Path, meta: dict,
                            callbacks: TrainCallbacks) -> None:
    """Score the validation split at the current step, report it, and save the weights if they are the best."""
    val_loss, val_accuracy = validate(model, data.val_images, data.val_labels, spec.in_chans, mean, std, device,
                                      amp, weight)
    callbacks.metrics(loop.step, {"val_loss": val_loss, "val_accuracy": val_accuracy, "epoch": meta["epoch"]})
    if loop.best_val_loss is None or val_loss < loop.best_val_loss:
        loop.best_val_loss, loop.best_step = val_loss, loop.step
        ckpt.save_weights(model, best_path, dict(meta, step=loop.step, val_loss=val_loss, val_accuracy=val_accuracy))


def _outcome(finished: bool, loop: ckpt.LoopState, total: int, best_path: Path) -> TrainOutcome:
    """A TrainOutcome from the loop state."""
    return TrainOutcome(finished=finished, step=loop.step, total_steps=total, best_step=loop.best_step,
                        best_val_loss=loop.best_val_loss, best_checkpoint=best_path)
