"""Safetensors checkpoints without pickle: tensors in `.safetensors`, scalars and structure in a `.json` beside it.

A training state is a flat dict of named tensors (model weights, optimizer moments, EMA weights, RNG states) plus
a JSON-able dict of scalars (step, ADA p, optimizer hyper-parameters). Both files are written atomically (a
temporary file renamed over the old one), so a run killed while saving keeps its previous checkpoint.
The Stable Diffusion generators may import these helpers too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from xaug.engine.errors import XaugError


class CheckpointError(XaugError):
    """A checkpoint is missing or unreadable: names the file and how to recover (delete it to start over)."""


def _atomic_write_text(path: Path, text: str) -> None:
    """Write a text file so that readers see either the old or the new content, never half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save named tensors (contiguous CPU copies) to a safetensors file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def load_tensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing or corrupt file raises CheckpointError naming it."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint file {path} does not exist; re-run the training job to create it")
    try:
        return load_file(str(path), device=device)
    except Exception as exc:  # safetensors raises several error types for a truncated file
        raise CheckpointError(f"checkpoint file {path} is unreadable ({exc}); delete it to train from scratch") from exc


def save_state(stem: Path, tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    """Save a training state as `<stem>.safetensors` + `<stem>.json` (the JSON is written last: it marks completeness)."""
    stem = Path(stem)
    save_tensors(stem.with_suffix(".safetensors"), tensors)
    _atomic_write_text(stem.with_suffix(".json"), json.dumps(scalars, indent=1, sort_keys=True))


def has_state(stem: Path) -> bool:
    """Whether a complete training state exists at `stem`."""
    stem = Path(stem)
    return stem.with_suffix(".json").exists() and stem.with_suffix(".safetensors").exists()


def load_state(stem: Path, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load the tensors and scalars saved by `save_state`."""
    stem = Path(stem)
    tensors = load_tensors(stem.with_suffix(".safetensors"), device=device)
    try:
        scalars = json.loads(stem.with_suffix(".json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{stem.with_suffix('.json')} is unreadable ({exc}); delete it to start over") from exc
    return tensors, scalars


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`{name: t}` -> `{prefix.name: t}` (to keep several state dicts in one file)."""
    return {f"{prefix}.{name}": t for name, t in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors saved under `prefix.` with the prefix removed."""
    start = prefix + "."
    return {name[len(start):]: t for name, t in tensors.items() if name.startswith(start)}


def module_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict with shared tensors cloned (safetensors refuses aliased storage)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def optimizer_to_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (per-parameter moments) and JSON scalars (groups, steps)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for index, entry in state["state"].items():
        plain = {}
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value
            else:
                plain[name] = value
        scalars["state"][str(index)] = plain
    return tensors, scalars


def optimizer_from_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                         scalars: dict[str, Any]) -> None:
    """Restore an optimizer from `optimizer_to_state` output."""
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in scalars["state"].items()}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})


def rng_to_tensors() -> dict[str, torch.Tensor]:
    """The global torch RNG states (CPU and every CUDA device) as uint8 tensors."""
    tensors = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = st
    return tensors


def rng_from_tensors(tensors: dict[str, torch.Tensor]) -> None:
    """Restore the global torch RNG states saved by `rng_to_tensors`."""
    torch.set_rng_state(tensors["cpu"].to(torch.uint8).cpu())
    if torch.cuda.is_available():
        states = [tensors[f"cuda{i}"].to(torch.uint8).cpu() for i in range(torch.cuda.device_count())
                  if f"cuda{i}" in tensors]
        if states:
            torch.cuda.set_rng_state_all(states)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a small JSON description file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON description file, raising CheckpointError naming it if missing or broken."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path} does not exist: is this the folder of a finished train_generator job?") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from exc
