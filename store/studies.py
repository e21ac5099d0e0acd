"""Studies, data splits and the pseudonymisation of patient identifiers."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping

import sqlite_utils

from xaug.store.db import now


def store_salt(db: sqlite_utils.Database) -> bytes:
    """This store's secret salt for patient pseudonyms, created on first use."""
    with db.conn:
        db.conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('patient_salt', ?)", (secrets.token_hex(16),))
    return bytes.fromhex(db.execute("SELECT value FROM meta WHERE key = 'patient_salt'").fetchone()[0])


def pseudonymise(salt: bytes, patient_id: str) -> str:
    """A stable, salted pseudonym for a patient identifier (HMAC-SHA256, 16 hex chars); the id itself is never stored."""
    return hmac.new(salt, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def record_study(db: sqlite_utils.Database, name: str, recipe_path: str | None, recipe_yaml: str, recipe: Mapping) -> None:
    """Create or update a study with the recipe text and its validated form."""
    stamp = now()
    with db.conn:
        db.conn.execute(
            "INSERT INTO studies (name, recipe_path, recipe_yaml, recipe_json, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET recipe_path = excluded.recipe_path,"
            " recipe_yaml = excluded.recipe_yaml, recipe_json = excluded.recipe_json, updated_at = excluded.updated_at",
            (name, recipe_path, recipe_yaml, json.dumps(recipe, sort_keys=True), stamp, stamp),
        )


def load_study(db: sqlite_utils.Database, name: str) -> dict | None:
    """A study row with its recipe decoded under `recipe`, or None if there is no such study."""
    rows = list(db["studies"].rows_where("name = ?", [name]))
    if not rows:
        return None
    row = rows[0]
    row["recipe"] = json.loads(row["recipe_json"])
    return row


def list_studies(db: sqlite_utils.Database) -> list[dict]:
    """All studies, newest first (without their recipe text)."""
    return list(db.query("SELECT name, recipe_path, created_at, updated_at FROM studies ORDER BY updated_at DESC"))


def record_split_members(db: sqlite_utils.Database, job_key: str, rows: Iterable[Mapping]) -> None:
    """Record fold/split membership: rows with repeat (default 0), fold, split, image_id, patient (already a
    pseudonym), label."""
    with db.conn:
        db.conn.execute("DELETE FROM split_members WHERE job_key = ?", (job_key,))
        db.conn.executemany(
            "INSERT INTO split_members (job_key, repeat, fold, split, image_id, patient, label)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(job_key, int(r.get("repeat", 0)), int(r["fold"]), r["split"], r["image_id"], r["patient"], r["label"])
             for r in rows],
        )


def load_split_members(db: sqlite_utils.Database, job_key: str, fold: int | None = None) -> list[dict]:
    """Split membership recorded by a data-preparation job, optionally for one fold."""
    where, params = "job_key = ?", [job_key]
    if fold is not None:
        where, params = where + " AND fold = ?", params + [fold]
    return list(db["split_members"].rows_where(where, params, order_by="repeat, fold, split, image_id"))


def record_skipped_images(db: sqlite_utils.Database, job_key: str, rows: Iterable[tuple[str, str]]) -> None:
    """Record images a loader skipped as (source, reason) pairs."""
    with db.conn:
        db.conn.executemany(
            "INSERT OR REPLACE INTO skipped_images (job_key, source, reason) VALUES (?, ?, ?)",
            [(job_key, source, reason) for source, reason in rows],
        )


def load_skipped_images(db: sqlite_utils.Database, job_key: str) -> list[dict]:
    """Images skipped by a data-preparation job, with the reason."""
    return list(db["skipped_images"].rows_where("job_key = ?", [job_key], order_by="source"))


def study_classes(db: sqlite_utils.Database, study: str) -> list[str]:
    """A study's class names in the study's order, from its recipe's dataset section or its jobs' configs."""
    from xaug.store.jobs import study_jobs_of_kind

    study_row = load_study(db, study)
    classes = ((study_row or {}).get("recipe") or {}).get("dataset", {}).get("classes")
    if classes:
        return list(classes)
    for kind in ("prepare_data", "train_generator", "sample", "train_classifier", "evaluate"):
        for _, config in study_jobs_of_kind(db, study, kind, status=None):
            classes = config.get("classes") or config.get("dataset", {}).get("classes")
            if classes:
                return list(classes)
    return []
