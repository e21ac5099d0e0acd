"""Classifier checkpoints without pickle: safetensors for every tensor, JSON (in the file's metadata) for the rest.

`best.safetensors` holds the model weights and what is needed to use them (classes, channels, normalisation).
`last.safetensors` additionally holds the optimizer moments, RNG states and, in its metadata, the loop position,
optimizer hyper-parameters and scheduler/scaler state, so that an interrupted run continues exactly where it was.
Both are written to a temporary file and renamed, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from xaug.engine.errors import StoreError

BEST = "best.safetensors"
LAST = "last.safetensors"


def _cpu_copy(t: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU tensor with its own storage (safetensors refuses shared storage)."""
    return t.detach().to("cpu").clone().contiguous()


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write a safetensors file via a temporary name and a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def save_weights(model: nn.Module, path: Path, meta: dict[str, Any]) -> None:
    """Save a model's weights (parameters and buffers) with JSON-able `meta` under the metadata key 'xaug'."""
    tensors = {k: _cpu_copy(v) for k, v in model.state_dict().items()}
    _atomic_save(tensors, path, {"xaug": json.dumps(meta)})


def read_meta(path: Path) -> dict[str, Any]:
    """The 'xaug' metadata of a checkpoint written by this module."""
    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("xaug", "{}"))


def load_weights(model: nn.Module, path: Path) -> dict[str, Any]:
    """Load weights into `model` (strictly) and return the checkpoint's metadata."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"classifier checkpoint {path} is missing; re-run its train_classifier job to recreate it")
    state = {}
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("xaug", "{}"))
        for key in f.keys():
            if not key.startswith(("optim/", "rng/")):
                state[key.removeprefix("model/")] = f.get_tensor(key)
    model.load_state_dict(state, strict=True)
    return meta


@dataclass
class LoopState:
    """Where training stands: optimiser steps done (which fixes the next batch), the best validation loss so far."""

    step: int = 0
    best_val_loss: float | None = None
    best_step: int | None = None


def save_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                        scaler: torch.amp.GradScaler | None, loop: LoopState, extra: dict[str, Any]) -> None:
    """Save everything needed to resume: weights, optimizer tensors, RNG states, loop position (no pickle)."""
    tensors = {f"model/{k}": _cpu_copy(v) for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, slots in opt["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim/{idx}/{name}"] = _cpu_copy(value)
            else:
                scalars.setdefault(str(idx), {})[name] = value
    tensors["rng/cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng/cuda"] = torch.cuda.get_rng_state()
    meta = dict(
        extra,
        loop=loop.__dict__,
        param_groups=opt["param_groups"],
        optim_scalars=scalars,
        scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
    )
    _atomic_save(tensors, path, {"xaug": json.dumps(meta)})


def load_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                        scaler: torch.amp.GradScaler | None) -> tuple[LoopState, dict[str, Any]]:
    """Restore a `save_training_state` file into the given objects; returns the loop state and the metadata."""
    model_state: dict[str, torch.Tensor] = {}
    opt_state: dict[int, dict[str, Any]] = {}
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["xaug"])
        for key in f.keys():
            tensor = f.get_tensor(key)
            if key.startswith("model/"):
                model_state[key.removeprefix("model/")] = tensor
            elif key.startswith("optim/"):
                _, idx, name = key.split("/", 2)
                opt_state.setdefault(int(idx), {})[name] = tensor
            elif key == "rng/cpu":
                torch.set_rng_state(tensor)
            elif key == "rng/cuda" and torch.cuda.is_available():
                torch.cuda.set_rng_state(tensor)
    for idx, slots in meta.get("optim_scalars", {}).items():
        opt_state.setdefault(int(idx), {}).update(slots)
    model.load_state_dict(model_state, strict=True)
    optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    return LoopState(**meta["loop"]), meta
