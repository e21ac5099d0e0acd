"""Studies, data splits and the pseudonymisation of patient identifiers.

Pseudonyms are keyed HMACs. The key never sits in the database, so a copy of the database alone (sent to a
colleague, attached to a paper) cannot be matched against a list of candidate patient ids: it is read from
$XAUG_PSEUDONYM_KEY (hex), else from the key file beside the database (`runs/x.db` -> `runs/x.key`, created 0600
on first use). Keep the key file with the database to get the same pseudonyms on every run; without it, a new key
gives new pseudonyms (and data preparation runs again).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import sqlite_utils

from xaug.store.db import now
from xaug.store.errors import StoreError

KEY_ENV = "XAUG_PSEUDONYM_KEY"


def key_path(db_path: str | Path) -> Path:
    """The pseudonym key file that belongs to a database file: `runs/x.db` -> `runs/x.key`."""
    path = Path(db_path)
    return path.with_name(path.stem + ".key")


def store_salt(db_path: str | Path) -> bytes:
    """The key of this store's patient pseudonyms: $XAUG_PSEUDONYM_KEY, else the key file beside the database
    (created 0600 with a random key on first use; processes creating it at once all end up with the first one)."""
    if os.environ.get(KEY_ENV):
        try:
            return bytes.fromhex(os.environ[KEY_ENV].strip())
        except ValueError:
            raise StoreError(f"${KEY_ENV} is not a hex string; set it to e.g. the output of "
                             "`python -c 'import secrets; print(secrets.token_hex(16))'`") from None
    path = key_path(db_path)
    if not path.is_file():
        write_key_file(path, secrets.token_hex(16))
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read the pseudonym key {path} ({exc}): restore it from a backup, or move the "
                         "store's prepared data away to start with a new key") from None


def write_key_file(path: Path, key_hex: str) -> None:
    """Create the key file 0600 holding `key_hex`, atomically; an existing key file is kept as it is."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.write(fd, (key_hex + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process created the key first: theirs wins, for everyone
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def pseudonymise(salt: bytes, patient_id: str) -> str:
    """A stable, keyed pseudonym for a patient identifier (HMAC-SHA256, 16 hex chars); the id itself is never
    stored."""
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


def require_study(db: sqlite_utils.Database, name: str) -> dict:
    """Like `load_study`, but a missing study is a StoreError that names the studies the store does have."""
    row = load_study(db, name)
    if row is None:
        known = ", ".join(s["name"] for s in list_studies(db)) or "none yet"
        raise StoreError(f"there is no study '{name}' in this store (studies there: {known}); "
                         "`xaug submit RECIPE` adds one")
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


def record_subsample(db: sqlite_utils.Database, job_key: str, draws: Iterable[Mapping]) -> None:
    """Record dataset.subsample's draw per class: class_name, target, available_images, available_patients,
    selected_images, selected_patients."""
    columns = ("class_name", "target", "available_images", "available_patients", "selected_images",
               "selected_patients")
    with db.conn:
        db.conn.execute("DELETE FROM subsample_draws WHERE job_key = ?", (job_key,))
        db.conn.executemany(
            f"INSERT INTO subsample_draws (job_key, {', '.join(columns)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(job_key, *(d[c] for c in columns)) for d in draws],
        )


def load_subsample(db: sqlite_utils.Database, job_key: str) -> list[dict]:
    """The subsample draw per class recorded by a data-preparation job (empty without dataset.subsample)."""
    return list(db["subsample_draws"].rows_where("job_key = ?", [job_key], order_by="rowid"))


def record_external_members(db: sqlite_utils.Database, job_key: str, rows: Iterable[Mapping]) -> None:
    """Record the external test set's images: rows with image_id, patient (already a pseudonym), label."""
    with db.conn:
        db.conn.execute("DELETE FROM external_members WHERE job_key = ?", (job_key,))
        db.conn.executemany(
            "INSERT INTO external_members (job_key, image_id, patient, label) VALUES (?, ?, ?, ?)",
            [(job_key, r["image_id"], r["patient"], r["label"]) for r in rows],
        )


def load_external_members(db: sqlite_utils.Database, job_key: str) -> list[dict]:
    """The external test set recorded by a data-preparation job (empty without dataset.external_test)."""
    return list(db["external_members"].rows_where("job_key = ?", [job_key], order_by="image_id"))


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
