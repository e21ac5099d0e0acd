"""The durable job queue: jobs, their dependencies, and their state as workers run them."""

from __future__ import annotations

import json

import sqlite_utils

from xaug.store.db import now


def load_job(db: sqlite_utils.Database, key: str) -> dict | None:
    """One job row with its config decoded under `config`, or None."""
    rows = list(db["jobs"].rows_where("key = ?", [key]))
    if not rows:
        return None
    row = rows[0]
    row["config"] = json.loads(row["config_json"])
    return row


def update_job_progress(
    db: sqlite_utils.Database, key: str, done: float, total: float, message: str = "", eta_s: float | None = None
) -> None:
    """Record how far a running job is, and its heartbeat."""
    with db.conn:
        db.conn.execute(
            "UPDATE jobs SET progress = ?, progress_total = ?, message = ?, eta_s = ?, heartbeat_at = ? WHERE key = ?",
            (float(done), float(total), message, eta_s, now(), key),
        )


def is_cancel_requested(db: sqlite_utils.Database, key: str) -> bool:
    """Whether someone asked this job to stop."""
    row = db.execute("SELECT cancel_requested FROM jobs WHERE key = ?", (key,)).fetchone()
    return bool(row and row[0])
