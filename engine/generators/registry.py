"""The generator registry: recipes pick a generative model by name (`model: ddpm`).

Each generator module registers itself with `@register_generator`; adding a sixth generator is one new file
plus its name in `_MODULES` below. Modules are imported lazily so that loading a recipe stays cheap.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from xaug.engine.generators.base import GeneratorImpl

# Registered name -> module that registers it (imported on first use).
_MODULES = {
    "gan": "xaug.engine.generators.gan",
    "ddpm": "xaug.engine.generators.ddpm",
    "sd_finetune": "xaug.engine.generators.sd_finetune",
    "dreambooth": "xaug.engine.generators.dreambooth",
    "lora": "xaug.engine.generators.lora",
}


@dataclass(frozen=True)
class GeneratorEntry:
    """A registered generator: its name, the pydantic schema of its `params`, and its implementation."""

    name: str
    config_class: type[BaseModel]
    factory: Callable[[], GeneratorImpl]
    distributed: bool = False
    """Whether one model can train on several GPUs (accelerate DDP, see distributed.py); others use one GPU."""


_REGISTRY: dict[str, GeneratorEntry] = {}


def register_generator(name: str, config_class: type[BaseModel], distributed: bool = False):
    """Class decorator: register a generator implementation under `name` with its params schema; `distributed`
    when its training loop runs as N accelerate processes (it then shards each global batch_size over them)."""

    def decorate(cls):
        _REGISTRY[name] = GeneratorEntry(name=name, config_class=config_class, factory=cls, distributed=distributed)
        return cls

    return decorate


def generator_names() -> list[str]:
    """All generator names a recipe may use."""
    return sorted(set(_MODULES) | set(_REGISTRY))


def suggest(name: str, known: list[str]) -> str:
    """A ' Did you mean X?' hint for a misspelt name, or ''."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def get_generator(name: str) -> GeneratorEntry:
    """The registry entry for `name`; an unknown name raises KeyError listing the known ones."""
    if name not in _REGISTRY and name in _MODULES:
        importlib.import_module(_MODULES[name])
    if name not in _REGISTRY:
        known = generator_names()
        raise KeyError(f"unknown generator '{name}'.{suggest(name, known)} Known generators: {', '.join(known)}")
    return _REGISTRY[name]
