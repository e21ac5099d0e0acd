"""Submitting a recipe: plan it and enqueue its jobs in the store (works while the engine is down)."""

from __future__ import annotations

import sqlite_utils
from xaug.engine.planner import PlannedJob, plan_study
from xaug.store.jobs import submit_study


def preflight(loaded):
    """What a recipe needs before its jobs are queued, beyond what loading checks: timm knows its classifiers, every
    pretrained weight resolves locally, and the dataset's records and folds can be made (without decoding a pixel).
    Raises RecipeError, WeightsError or DataError; returns the dataset's RecordSet. `xaug recipe check` and
    submitting both run it."""
    from xaug.engine.data.sources import check_dataset
    from xaug.engine.recipe import check_models
    from xaug.engine.weights import check_weights

    check_models(loaded)
    check_weights(loaded)
    return check_dataset(loaded)


def submit_recipe(db: sqlite_utils.Database, loaded, jobs: list[PlannedJob] | None = None,
                  priority: int = 0, checked: bool = False) -> tuple[list[PlannedJob], dict[str, int]]:
    """Plan a `LoadedRecipe` (unless `jobs` are given) and submit it as a study; returns the jobs and counts.

    `priority` is added to every new job's priority (jobs already in the store keep theirs). The recipe goes through
    `preflight` first, unless the caller ran it already (`checked`: a command that checks before it opens a store,
    so that a bad recipe leaves no store behind).
    """
    if not checked:
        preflight(loaded)
    if jobs is None:
        jobs = plan_study(loaded)
    if priority:
        from dataclasses import replace

        jobs = [replace(job, priority=job.priority + priority) for job in jobs]
    recipe = loaded.recipe
    counts = submit_study(db, recipe.name, str(loaded.path) if loaded.path else None, loaded.text,
                          recipe.model_dump(mode="json"), jobs)
    return jobs, counts
