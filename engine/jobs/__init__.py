"""Job kinds: each is a `run(ctx: JobContext) -> None` function that computes one step of a study.

Kinds are entry points of the group `xaug.job_kinds` (see engine/plugins.py): xaug declares its seven (and the
benchmarks' `noop`) in pyproject.toml, and another installed package adds a kind the same way. The engine imports
a kind's module only in the worker that runs it, so the scheduler never imports torch.
"""

from __future__ import annotations

from typing import Callable

from xaug.engine.plugins import JOB_KINDS, NOT_INSTALLED, plugin_entry_points, provider

# The code version of each job kind: part of its key. Bump a kind's version when a change to its code (or to code
# it calls) changes what it computes for the same config and inputs (another loss, sampler, metric, preprocessing,
# checkpoint layout that dependents read), so stores re-run it and its dependents instead of reusing old results.
# Refactors, speed-ups and new log lines that give the same outputs keep the version. Kinds not listed (benchmark
# no-ops) have version 0.
JOB_VERSIONS = {
    "prepare_data": 1,
    "train_generator": 1,
    "sample": 1,
    "image_quality": 1,
    "train_classifier": 1,
    "evaluate": 1,
    "analyse": 1,
}


def job_kinds() -> list[str]:
    """The names of every installed job kind."""
    return sorted(plugin_entry_points(JOB_KINDS))


def job_function(kind: str) -> Callable:
    """The `run(ctx)` function of a job kind (importing its module)."""
    point = plugin_entry_points(JOB_KINDS).get(kind)
    if point is None:
        known = ", ".join(job_kinds()) or NOT_INSTALLED
        raise KeyError(f"unknown job kind '{kind}'; installed kinds: {known}")
    run = point.load()
    if not callable(run):
        raise TypeError(f"job kind entry point {provider(point)} is not a run(ctx) function")
    return run
