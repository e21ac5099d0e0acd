"""What a running job sees: its config, its inputs, where to write, and how to report progress or stop.

The engine builds a `JobContext` and calls the job kind's `run(ctx)`; the job never imports the scheduler.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import sqlite_utils

from xaug.store import artifact_root
from xaug.store.jobs import is_cancel_requested, update_job_progress
from xaug.store.metrics import record_metrics


class JobInterrupted(Exception):
    """Raised by `ctx.check_stop()`: the worker exits and the job resumes later from its last checkpoint (a job
    without checkpoints starts over), or ends cancelled if a cancel was requested."""


@dataclass
class JobContext:
    """A job's view of the world while it runs."""

    key: str
    kind: str
    config: dict[str, Any]
    db: sqlite_utils.Database
    db_path: Path
    deps: dict[str, dict] = field(default_factory=dict)
    """Dependency key -> its job row (kind, label, config...)."""
    device: str = "cpu"
    """'cpu' or 'cuda' (the scheduler has already set CUDA_VISIBLE_DEVICES)."""
    stop_requested: Callable[[], bool] = lambda: False
    """Set by the worker when the engine asks it to stop (SIGTERM); cancel requests are read from the store."""
    on_record: Callable[[bool], None] = lambda urgent: None
    """Called after progress (urgent=False) and metrics or a checkpoint (urgent=True) are recorded: a remote
    worker passes them on to its journal, at once when urgent, so a job resumed from its checkpoint never lacks
    the curve points recorded before it."""
    _last_cancel_check: float = 0.0
    _cancelled: bool = False
    _first_report: tuple[float, float] | None = None
    """(time, done) of this process's first progress report: the origin of its rate after a resume."""

    @property
    def artifact_root(self) -> Path:
        """The store's artifact folder."""
        return artifact_root(self.db_path)

    @property
    def work_dir(self) -> Path:
        """This job's own folder under the artifact root (created on first use)."""
        path = self.artifact_root / "jobs" / self.kind / self.key[:16]  # kind and key are ours, not data
        path.mkdir(parents=True, exist_ok=True)
        return path

    def work_dir_of(self, dep_key: str) -> Path:
        """The folder of a dependency job."""
        return self.artifact_root / "jobs" / self.deps[dep_key]["kind"] / dep_key[:16]

    def dep_of_kind(self, kind: str) -> str:
        """The key of the single dependency of a kind (e.g. 'prepare_data')."""
        keys = [k for k, row in self.deps.items() if row["kind"] == kind]
        if len(keys) != 1:
            raise LookupError(f"job {self.key[:12]} has {len(keys)} dependencies of kind {kind}, expected 1")
        return keys[0]

    def deps_of_kind(self, kind: str) -> list[str]:
        """Keys of all dependencies of a kind."""
        return sorted(k for k, row in self.deps.items() if row["kind"] == kind)

    def relpath(self, path: Path) -> str:
        """A path under the artifact root, as stored in the artifacts table."""
        return str(Path(path).resolve().relative_to(self.artifact_root.resolve()))

    def progress(self, done: float, total: float, message: str = "") -> None:
        """Report progress (e.g. step 120 of 1000); the ETA extrapolates the rate since this process's first report,
        so that a job resumed at step 500 is not credited with the 500 steps an earlier process made."""
        now = time.monotonic()
        if self._first_report is None or done < self._first_report[1]:
            self._first_report = (now, done)
        since, done_then = self._first_report
        rate = (done - done_then) / (now - since) if done > done_then and now > since else None
        eta = (total - done) / rate if rate and total > done else None
        update_job_progress(self.db, self.key, done, total, message, eta)
        self.on_record(False)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        """Record curve points (losses, lr, ...) at a step; re-recording a step after a resume replaces it."""
        record_metrics(self.db, self.key, step, values)
        self.on_record(True)

    def should_stop(self) -> bool:
        """True when the job should checkpoint and stop: the engine is shutting down or a cancel was requested."""
        if self.stop_requested():
            return True
        now = time.monotonic()
        if now - self._last_cancel_check > 1.0:
            self._last_cancel_check = now
            self._cancelled = is_cancel_requested(self.db, self.key)
        return self._cancelled

    def check_stop(self) -> None:
        """Raises JobInterrupted if the job should stop now. Call it right after saving a checkpoint, and in a job
        without checkpoints between its long steps and before it records its results."""
        self.on_record(True)
        if self.should_stop():
            raise JobInterrupted(self.key)
