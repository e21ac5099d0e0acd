"""The generator registry: recipes pick a generative model by name (`model: ddpm`).

Each generator module registers itself with `@register_generator`, and an entry point of the group
`xaug.generators` names that module (engine/plugins.py): xaug declares its own generators in pyproject.toml, and a
sixth one is one file in any installed package that declares it the same way. A module is imported on first use
of its name, so that loading a recipe stays cheap.

A generator's params model may define `recipe_problems(resolve, classes, per_class)`, yielding (params key,
message) for what the recipe check can see is wrong (e.g. a missing folder), so that it fails before queueing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from xaug.engine.generators.base import GeneratorImpl
from xaug.engine.plugins import GENERATOR_PARAMS, GENERATORS, NOT_INSTALLED, plugin_entry_points, provider


PATH_PARAMS = ("base_model", "pipeline", "lora")
"""Generator params that name a local file or folder, relative to the recipe file (when something is there; else,
e.g., a Hugging Face repo id): the planner writes them as absolute paths, and job keys hash what lies there."""


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
    """All generator names a recipe may use (installed entry points, and any registered in this process)."""
    return sorted(set(plugin_entry_points(GENERATORS)) | set(_REGISTRY))


def suggest(name: str, known: list[str]) -> str:
    """A ' Did you mean X?' hint for a misspelt name, or ''."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def get_generator(name: str) -> GeneratorEntry:
    """The registry entry for `name`, importing the module its entry point names on first use; an unknown name
    raises KeyError listing the known ones."""
    point = plugin_entry_points(GENERATORS).get(name)
    if name not in _REGISTRY and point is not None:
        try:
            point.load()
        except Exception as exc:  # a plugin's own bug or missing dependency: say which package, and what
            raise KeyError(f"generator '{name}' could not be imported from its entry point {provider(point)}: "
                           f"{type(exc).__name__}: {exc}") from exc
        if name not in _REGISTRY:
            raise KeyError(f"generator entry point {provider(point)} registered no generator named '{name}': "
                           f"decorate its class with @register_generator('{name}', ParamsModel)")
    if name not in _REGISTRY:
        known = generator_names()
        raise KeyError(f"unknown generator '{name}'.{suggest(name, known)} Known generators: "
                       f"{', '.join(known) or NOT_INSTALLED}")
    return _REGISTRY[name]


def params_class(name: str) -> type[BaseModel]:
    """The params model of generator `name`: from the `xaug.generator_params` entry point when its package declares
    one (a torch-free module: loading a recipe then imports no model library), else from the registered generator
    (importing it). Raises KeyError like get_generator for an unknown or broken generator."""
    point = plugin_entry_points(GENERATOR_PARAMS).get(name)
    if point is not None and name in plugin_entry_points(GENERATORS):
        try:
            return point.load()
        except Exception:  # noqa: BLE001  the generator's own import then says what is wrong
            pass
    return get_generator(name).config_class
