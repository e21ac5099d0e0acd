"""Checkpoints: the one atomic, pickle-free mechanism of every trainer (GAN, DDPM, Stable Diffusion, classifiers).

A resumable checkpoint is a folder below a checkpoint root:

    <root>/step-000000120/state.safetensors   named tensors: weights, optimizer moments, EMA, RNG states
    <root>/step-000000120/state.json          JSON scalars: {"step": 120, ...the trainer's scalars}
    <root>/step-000000120/...                 anything else the trainer writes (diffusers save_pretrained folders)
    <root>/latest                             one line: the name of the newest checkpoint folder

Writing (`save_checkpoint`): everything goes into `<root>/step-000000120.tmp-<pid>/`; every file and folder in it
is fsynced; the folder is renamed to `step-000000120/` (a rename is atomic) and the root fsynced; then `latest` is
replaced atomically (a temporary file, fsync, os.replace, fsync of the root); only then are older checkpoints
renamed to `*.trash` and deleted. A kill -9 at any instant therefore leaves the previous checkpoint or the new
one complete, never a mix: a folder named `step-N` (no suffix) is complete by construction. Loading
(`load_checkpoint`) follows `latest`, falls back to the newest `step-N` folder if `latest` is missing, and ignores
`.tmp-*` and `.trash` leftovers (the next save deletes them).

Single files that are not resumable state (a classifier's best weights, a generator's manifest) are written with
`save_tensors` / `write_json`: a temporary file, fsync, os.replace, fsync of the folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from xaug.store.errors import XaugError

CHECKPOINTS = "checkpoints"
"""The usual name of a checkpoint root inside a job's work folder (per trained unit for generators)."""
LATEST = "latest"
TENSORS = "state.safetensors"
SCALARS = "state.json"
_NAME = re.compile(r"step-(\d+)(?:-(\d+))?")


class CheckpointError(XaugError):
    """A checkpoint is missing or unreadable: names the file and how to recover (delete it to start over)."""


# ------------------------------------------------------------------------------------------------ durable writes


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's contents (a folder: its entries, i.e. renames into it) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file and folder below `folder`, then `folder` itself."""
    for dirpath, _, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            fsync_path(Path(dirpath) / name)
        fsync_path(Path(dirpath))


def _replace_file(path: Path, write: Callable[[Path], None]) -> None:
    """Write a file through `write(tmp)`, fsync it, rename it over `path`, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


def _cpu_copy(t: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU tensor with its own storage (safetensors refuses tensors that share storage)."""
    t = t.detach()
    return t.to("cpu").contiguous() if t.device.type != "cpu" else t.clone().contiguous()


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save named tensors (contiguous CPU copies with their own storage) to one safetensors file, atomically."""
    cpu = {k: _cpu_copy(v) for k, v in tensors.items()}
    _replace_file(path, lambda tmp: save_file(cpu, str(tmp), metadata=metadata))


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a small JSON file atomically."""
    text = json.dumps(data, indent=1, sort_keys=True)
    _replace_file(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON file, raising CheckpointError naming it if missing or broken."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path} does not exist: is this the folder of a finished training job?") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); delete it to start over") from exc


def load_tensors(path: Path, device: str = "cpu", prefix: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file (only those under `prefix.`, with the prefix removed, when given)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist; re-run the training job to create it")
    start = f"{prefix}." if prefix else ""
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            return {key[len(start):]: f.get_tensor(key) for key in f.keys() if key.startswith(start)}
    except Exception as exc:  # safetensors raises several error types for a damaged file
        raise CheckpointError(f"checkpoint file {path} is unreadable ({exc}); delete it to train from scratch") from exc


def publish_folder(dest: Path, fill: Callable[[Path], None]) -> Path:
    """Write a folder that readers must see whole (a finished model): fill a temporary sibling, fsync, rename."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    fill(tmp)
    fsync_tree(tmp)
    if dest.exists():
        _discard(dest)
    os.rename(tmp, dest)
    fsync_path(dest.parent)
    return dest


def _discard(folder: Path) -> None:
    """Delete a folder so that no half-deleted copy keeps a complete-looking name (rename first, then delete)."""
    trash = folder.with_name(f"{folder.name}.trash")
    shutil.rmtree(trash, ignore_errors=True)
    os.rename(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


# ------------------------------------------------------------------------------------------ resumable checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint folder: where it is, its step and its JSON scalars (tensors are read on demand)."""

    path: Path
    step: int
    scalars: dict[str, Any]

    def tensors(self, device: str = "cpu", prefix: str | None = None) -> dict[str, torch.Tensor]:
        """Its tensors (those under `prefix.` only, prefix removed, when given); {} if it saved none."""
        if not (self.path / TENSORS).is_file():
            return {}
        return load_tensors(self.path / TENSORS, device=device, prefix=prefix)


def _order(name: str) -> tuple[int, int] | None:
    """(step, serial) of a complete checkpoint folder's name; None for anything else (temporary, trash, files)."""
    match = _NAME.fullmatch(name)
    return None if match is None else (int(match.group(1)), int(match.group(2) or 0))


def _complete(root: Path) -> list[Path]:
    """The complete checkpoint folders of a root, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _order(p.name) is not None and (p / SCALARS).is_file()]
    return sorted(found, key=lambda p: _order(p.name))


def save_checkpoint(root: Path, step: int, tensors: dict[str, torch.Tensor] | None = None,
                    scalars: dict[str, Any] | None = None, fill: Callable[[Path], None] | None = None,
                    keep: int = 1) -> Path:
    """Write a checkpoint atomically (see the module docstring); keep the newest `keep`; returns its folder.

    `fill(folder)` may write more files into the checkpoint (e.g. diffusers `save_pretrained` folders).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    # The same step saved again (a stop right after a periodic save) gets the next serial number.
    serials = [order[1] for p in root.iterdir() if (order := _order(p.name)) is not None and order[0] == step]
    name = f"step-{step:09d}" + (f"-{max(serials) + 1}" if serials else "")
    tmp = root / f"{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if fill is not None:
        fill(tmp)
    cpu = {k: _cpu_copy(v) for k, v in (tensors or {}).items()}
    if cpu:
        save_file(cpu, str(tmp / TENSORS))
    (tmp / SCALARS).write_text(json.dumps({**(scalars or {}), "step": step}, indent=1, sort_keys=True))
    fsync_tree(tmp)
    final = root / name
    os.rename(tmp, final)
    fsync_path(root)
    _replace_file(root / LATEST, lambda t: t.write_text(name + "\n"))
    _prune(root, final, keep)
    return final


def _prune(root: Path, newest: Path, keep: int) -> None:
    """Delete leftovers of killed saves and all but the newest `keep` complete checkpoints."""
    complete = [p for p in _complete(root) if p != newest]
    old = complete[:max(0, len(complete) - (keep - 1))]
    for folder in old:
        _discard(folder)
    for leftover in root.iterdir():  # temporary folders and pointer files of saves that were killed
        if leftover.is_dir() and _order(leftover.name) is None:
            shutil.rmtree(leftover, ignore_errors=True)
        elif leftover.name.startswith(f".{LATEST}.tmp-") and leftover.name != f".{LATEST}.tmp-{os.getpid()}":
            leftover.unlink(missing_ok=True)


def latest_checkpoint_path(root: Path) -> Path | None:
    """The newest complete checkpoint folder of a root: the one `latest` names, else the highest step."""
    root = Path(root)
    try:
        named = root / (root / LATEST).read_text().strip()
        if _order(named.name) is not None and (named / SCALARS).is_file():
            return named
    except OSError:
        pass
    complete = _complete(root)
    return complete[-1] if complete else None


def load_checkpoint(root: Path) -> Checkpoint | None:
    """The newest complete checkpoint under `root`, or None when there is none."""
    path = latest_checkpoint_path(root)
    if path is None:
        return None
    scalars = read_json(path / SCALARS)
    return Checkpoint(path=path, step=int(scalars["step"]), scalars=scalars)


def resume_checkpoint(root: Path) -> Checkpoint | None:
    """`load_checkpoint` for a trainer that continues from it: says in the worker log which step it resumes from."""
    found = load_checkpoint(root)
    if found is not None:
        print(f"resumed from checkpoint at step {found.step} ({found.path})", flush=True)
    return found


def has_checkpoint(root: Path) -> bool:
    """Whether `root` holds a complete checkpoint."""
    return latest_checkpoint_path(root) is not None


# ------------------------------------------------------------------------ training state as tensors + JSON scalars


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
    """The global torch RNG states (CPU and every initialised CUDA device) as uint8 tensors."""
    tensors = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
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
