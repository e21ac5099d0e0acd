"""Job kinds: each module has `run(ctx: JobContext) -> None` and computes one step of a study.

The engine imports a kind's module only in the worker that runs it, so the scheduler never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Callable

JOB_KINDS = {
    "prepare_data": "xaug.engine.jobs.prepare_data",
    "train_generator": "xaug.engine.jobs.train_generator",
    "sample": "xaug.engine.jobs.sample",
    "image_quality": "xaug.engine.jobs.image_quality",
    "train_classifier": "xaug.engine.jobs.train_classifier",
    "evaluate": "xaug.engine.jobs.evaluate",
    "analyse": "xaug.engine.jobs.analyse",
}

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


def job_function(kind: str) -> Callable:
    """The `run(ctx)` function of a job kind."""
    if kind not in JOB_KINDS:
        raise KeyError(f"unknown job kind '{kind}'; known kinds: {', '.join(JOB_KINDS)}")
    return importlib.import_module(JOB_KINDS[kind]).run
