"""Classifier checkpoints without pickle, through the one checkpoint mechanism (engine/checkpoint.py).

`best.safetensors` holds the model weights and what is needed to use them (classes, channels, normalisation) in
its metadata; it is written atomically (temporary file, fsync, rename). `last/` is a checkpoint root whose newest
step folder holds the weights, optimizer moments and RNG states (tensors) and the loop position, optimizer
hyper-parameters and scheduler/scaler state (JSON), so that an interrupted run continues exactly where it was;
a kill at any instant leaves the previous or the new one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from xaug.engine import checkpoint as ckpt
from xaug.store.errors import StoreError

BEST = "best.safetensors"
LAST = "last"


def save_weights(model: nn.Module, path: Path, meta: dict[str, Any]) -> None:
    """Save a model's weights (parameters and buffers) with JSON-able `meta` under the metadata key 'xaug'."""
    ckpt.save_tensors(path, dict(model.state_dict()), {"xaug": json.dumps(meta)})


def read_meta(path: Path) -> dict[str, Any]:
    """The 'xaug' metadata of a checkpoint written by this module."""
    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("xaug", "{}"))


def load_weights(model: nn.Module, path: Path) -> dict[str, Any]:
    """Load weights into `model` (strictly) and return the checkpoint's metadata."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"classifier checkpoint {path} is missing; re-run its train_classifier job to recreate it")
    model.load_state_dict(ckpt.load_tensors(path), strict=True)
    return read_meta(path)


@dataclass
class LoopState:
    """Where training stands: optimiser steps done (which fixes the next batch), the best validation loss so far."""

    step: int = 0
    best_val_loss: float | None = None
    best_step: int | None = None


def save_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                        scaler: torch.amp.GradScaler | None, loop: LoopState, extra: dict[str, Any]) -> None:
    """Save everything needed to resume (weights, optimizer, RNG, loop position) as a checkpoint under `path`."""
    opt_tensors, opt_scalars = ckpt.optimizer_to_state(optimizer)
    tensors = {**ckpt.prefixed("model", dict(model.state_dict())), **ckpt.prefixed("optim", opt_tensors),
               **ckpt.prefixed("rng", ckpt.rng_to_tensors())}
    scalars = dict(
        extra,
        loop=loop.__dict__,
        optimizer=opt_scalars,
        scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
    )
    ckpt.save_checkpoint(path, loop.step, tensors, scalars)


def has_training_state(path: Path) -> bool:
    """Whether `path` holds a checkpoint written by `save_training_state`."""
    return ckpt.has_checkpoint(path)


def load_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                        scaler: torch.amp.GradScaler | None) -> tuple[LoopState, dict[str, Any]]:
    """Restore the newest `save_training_state` checkpoint into the given objects; returns the loop state and
    the saved scalars (the worker log says which step it resumed from)."""
    saved = ckpt.resume_checkpoint(path)
    if saved is None:
        raise ckpt.CheckpointError(f"{path} holds no classifier checkpoint; delete it to train from scratch")
    tensors = saved.tensors()
    meta = saved.scalars
    model.load_state_dict(ckpt.unprefixed("model", tensors), strict=True)
    ckpt.optimizer_from_state(optimizer, ckpt.unprefixed("optim", tensors), meta["optimizer"])
    ckpt.rng_from_tensors(ckpt.unprefixed("rng", tensors))
    scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    return LoopState(**meta["loop"]), meta
