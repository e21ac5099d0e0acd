"""Commands the TUI sends to the engine. The queue is durable in SQLite, so a command is a small store update
(xaug.store.jobs) that the engine picks up; submitting plans the recipe exactly like `xaug submit`."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from xaug.store import jobs as store_jobs

CANCEL_OUTCOMES = {"cancelled": "cancelled", "cancel_requested": "cancel requested (it stops at its next checkpoint)",
                   "missing": "not in the store any more"}


def cancel(db: sqlite_utils.Database, key: str) -> str:
    """Cancel a queued job, or ask a running one to stop; returns what happened, for a notification."""
    outcome = store_jobs.cancel_job(db, key)
    return CANCEL_OUTCOMES.get(outcome, f"not cancelled: the job is {outcome}")


def retry(db: sqlite_utils.Database, key: str) -> str:
    """Queue a failed or cancelled job again with its attempts reset."""
    return "queued again" if store_jobs.retry_job(db, key) else "not retried: only failed or cancelled jobs can be"


def change_priority(db: sqlite_utils.Database, key: str, current: int, delta: int) -> int:
    """Raise or lower a job's priority by `delta`; returns the new priority."""
    store_jobs.set_job_priority(db, key, current + delta)
    return current + delta


def set_paused(db: sqlite_utils.Database, paused: bool) -> None:
    """Pause or resume the queue."""
    store_jobs.set_paused(db, paused)


def submit_recipe(db: sqlite_utils.Database, recipe_path: str) -> str:
    """Load, plan and submit a recipe (the same path as `xaug submit`); returns a one-line summary.

    Raises RecipeError (every problem with file and line) for a bad recipe.
    """
    from xaug.engine.queue.submit import submit_recipe as submit
    from xaug.engine.recipe.loader import load_recipe

    loaded = load_recipe(Path(recipe_path).expanduser())
    jobs, counts = submit(db, loaded)
    details = ", ".join(f"{n} {what}" for what, n in counts.items() if what != "jobs" and n)
    return f"submitted study {loaded.recipe.name}: {len(jobs)} jobs" + (f" ({details})" if details else "")
