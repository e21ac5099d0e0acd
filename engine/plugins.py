"""Plugins: the generators and job kinds that installed packages declare as entry points.

xaug's own five generators and seven job kinds are declared in its pyproject.toml exactly as another package
declares a sixth generator or a new job kind, so there is one way to add either, and xaug need not be edited:

    [project.entry-points."xaug.generators"]
    my_gan = "my_package.my_gan"              # a module that calls @register_generator("my_gan", ...)

    [project.entry-points."xaug.job_kinds"]
    my_kind = "my_package.my_job:run"         # a `run(ctx: JobContext) -> None` function

When two installed packages declare the same name, the one found first on sys.path wins, as with modules.
The lists are read once per process (cheap: no plugin is imported until it is used); `forget_plugins` makes the
next look-up read them again (a forked worker whose PYTHONPATH differs from its parent's).
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points

GENERATORS = "xaug.generators"
"""Entry-point group of generators: name -> a module (or an object in it) whose import registers the generator."""
GENERATOR_PARAMS = "xaug.generator_params"
"""Optional entry-point group: generator name -> its params model in a module free of torch, so that loading a recipe
validates params without importing model code (a generator without one is imported to reach its params)."""
JOB_KINDS = "xaug.job_kinds"
"""Entry-point group of job kinds: name -> the kind's `run(ctx)` function."""

NOT_INSTALLED = "none: xaug's own entry points are missing, so reinstall it (`pip install -e .` in its folder)"
"""What to say when a group is empty: xaug's own metadata is absent (an install older than its entry points)."""


@functools.cache
def plugin_entry_points(group: str) -> dict[str, EntryPoint]:
    """Every entry point of `group` by name; for a name declared twice, the first on sys.path."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=group):
        found.setdefault(point.name, point)
    return found


def forget_plugins() -> None:
    """Read the installed entry points again at the next look-up (after sys.path changed)."""
    plugin_entry_points.cache_clear()


def provider(point: EntryPoint) -> str:
    """Which installed package declares an entry point, for error messages: 'name = value (package x)'."""
    dist = getattr(point, "dist", None)
    where = f" (package {dist.name})" if dist is not None else ""
    return f"'{point.name} = {point.value}'{where}"
