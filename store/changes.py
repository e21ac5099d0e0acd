"""A job's rows as changes: how a worker on another node records into the store without opening it.

SQLite's WAL does not work over a network filesystem, so a remote worker never opens the study database. The
engine gives it a *snapshot* (`job_snapshot`: the rows of the job and of its dependencies that a job may read),
the worker loads it into a private in-memory store (`open_scratch_store`) in which triggers capture every row
that the job's ordinary `record_*` calls insert, update or delete. `drain_changes` hands those changes out in
order, the worker appends them to its journal file, and the engine applies them to the real store with
`apply_changes`, together with the journal's sequence number in the same transaction, so an engine that
restarts in between applies each change exactly once.

Changes are row images (table, identity columns, values), not SQL text: applying one is an upsert or a delete
by the table's natural key, so the same change applied twice leaves the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import sqlite_utils

from xaug.store.db import open_store
from xaug.store.jobs import immediate

_OUTBOX = "_captured_changes"
_NOT_CAPTURED = {"_sqlite_migrations", _OUTBOX, "meta", "engine", "queue_state", "gpu_stats", "studies", "study_jobs",
                 "job_deps", "ratings"}
"""Tables a job never writes: store facts, the engine's own state, the queue's structure, the reader study."""
_JOB_COLUMNS = ("progress", "progress_total", "message", "eta_s", "heartbeat_at")
"""The only columns of `jobs` a worker may change (its progress); its state is the engine's to set."""


def job_snapshot(db: sqlite_utils.Database, key: str) -> dict:
    """What a job may read, as plain rows: its own and its dependencies' rows of every job-keyed table, the
    `jobs` rows themselves, its `job_deps` and the store's `meta` (the pseudonym key is not in it: a remote worker
    reads the key file beside the store, see studies.py)."""
    deps = [r[0] for r in db.execute("SELECT dep_key FROM job_deps WHERE job_key = ?", (key,)).fetchall()]
    keys = [key, *deps]
    marks = ",".join("?" * len(keys))
    tables: dict[str, list[dict]] = {
        "jobs": [dict(r) for r in db.query(f"SELECT * FROM jobs WHERE key IN ({marks})", keys)],
        "job_deps": [{"job_key": key, "dep_key": d} for d in deps],
        "meta": [dict(r) for r in db.query("SELECT * FROM meta")],
    }
    for table in _captured_tables(db):
        if table != "jobs" and "job_key" in _columns(db, table):
            tables[table] = [dict(r) for r in db.query(f"SELECT * FROM [{table}] WHERE job_key IN ({marks})", keys)]
    return {"key": key, "deps": deps, "tables": tables}


def open_scratch_store(snapshot: Mapping) -> sqlite_utils.Database:
    """A private in-memory store holding `snapshot`, in which every later write to a job table is captured."""
    db = open_store(":memory:")
    with db.conn:
        for table, rows in snapshot["tables"].items():
            for row in rows:
                names = list(row)
                db.conn.execute(f"INSERT OR REPLACE INTO [{table}] ({', '.join(f'[{n}]' for n in names)})"
                                f" VALUES ({', '.join('?' * len(names))})", [row[n] for n in names])
        db.conn.execute(f"CREATE TABLE {_OUTBOX} (seq INTEGER PRIMARY KEY AUTOINCREMENT, change TEXT NOT NULL)")
        for table in _captured_tables(db):
            for statement in _capture_triggers(db, table):
                db.conn.execute(statement)
    return db


def drain_changes(db: sqlite_utils.Database) -> list[dict]:
    """The changes captured in a scratch store since the last drain, oldest first (and forget them there)."""
    with db.conn:
        rows = db.conn.execute(f"SELECT seq, change FROM {_OUTBOX} ORDER BY seq").fetchall()
        if rows:
            db.conn.execute(f"DELETE FROM {_OUTBOX} WHERE seq <= ?", (rows[-1][0],))
    return [_as_change(json.loads(text)) for _, text in rows]


def applied_seq(db: sqlite_utils.Database, key: str) -> int:
    """The sequence number of the last journal entry of a job applied to the store (0 when none)."""
    row = db.execute("SELECT journal_seq FROM jobs WHERE key = ?", (key,)).fetchone()
    return int(row[0] or 0) if row else 0


def apply_changes(db: sqlite_utils.Database, key: str, changes: Iterable[Mapping], seq: int) -> list[str]:
    """Apply a job's changes and remember `seq` as applied, in one transaction. A change may only touch rows of
    this job (its `job_key`, or its own `jobs` row): others are left out and described in the returned list."""
    tables = {table: set(_columns(db, table)) for table in _captured_tables(db)}
    rejected = []
    with immediate(db):
        for change in changes:
            problem = _foreign(key, change, tables)
            if problem:
                rejected.append(problem)
            else:
                _apply_one(db, key, change)
        db.conn.execute("UPDATE jobs SET journal_seq = ? WHERE key = ? AND journal_seq < ?", (seq, key, seq))
    return rejected


def set_slurm_job(db: sqlite_utils.Database, key: str, slurm_job_id: str | None, slurm_state: str | None) -> None:
    """Record the Slurm job that runs a job, and its last seen Slurm state."""
    with db.conn:
        db.conn.execute("UPDATE jobs SET slurm_job_id = ?, slurm_state = ? WHERE key = ?",
                        (slurm_job_id, slurm_state, key))


def set_slurm_state(db: sqlite_utils.Database, slurm_job_id: str, slurm_state: str) -> None:
    """Record the state Slurm reports for one of its jobs (PENDING, RUNNING, COMPLETED, CANCELLED, ...)."""
    with db.conn:
        db.conn.execute("UPDATE jobs SET slurm_state = ? WHERE slurm_job_id = ?", (slurm_state, slurm_job_id))


# --- capture and apply -----------------------------------------------------------------------------------------------

def _columns(db, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info([{table}])").fetchall()]


def _captured_tables(db) -> list[str]:
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                      " AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()]
    return [n for n in names if n not in _NOT_CAPTURED]


def _identity(db, table: str) -> list[str]:
    """The columns that name a row: the primary key, or the first unique index when the key is a rowid alias."""
    info = db.execute(f"PRAGMA table_info([{table}])").fetchall()
    pk = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]]
    if len(pk) == 1 and any(r[1] == pk[0] and r[2].upper() == "INTEGER" for r in info):
        for index in db.execute(f"PRAGMA index_list([{table}])").fetchall():
            if index[2]:
                return [r[2] for r in db.execute(f"PRAGMA index_info([{index[1]}])").fetchall()]
    return pk


def _rowid_alias(db, table: str) -> str | None:
    info = db.execute(f"PRAGMA table_info([{table}])").fetchall()
    pk = [r for r in info if r[5]]
    return pk[0][1] if len(pk) == 1 and pk[0][2].upper() == "INTEGER" else None


def _capture_triggers(db, table: str) -> list[str]:
    """AFTER INSERT/UPDATE/DELETE triggers that append each row image to the outbox (the rowid alias left out:
    the real store numbers its own rows)."""
    alias = _rowid_alias(db, table)
    columns = [c for c in _columns(db, table) if c != alias]
    identity = _identity(db, table)

    def image(ref: str, names: list[str]) -> str:
        return "json_object(" + ", ".join(f"'{n}', {ref}.[{n}]" for n in names) + ")"

    def record(op: str, ref: str, names: list[str]) -> str:
        return (f"INSERT INTO {_OUTBOX} (change) VALUES (json_object('op', '{op}', 'table', '{table}',"
                f" 'key', {image(ref, identity)}, 'row', {image(ref, names)}))")

    return [
        f"CREATE TRIGGER _capture_{table}_i AFTER INSERT ON [{table}] BEGIN {record('upsert', 'NEW', columns)}; END",
        f"CREATE TRIGGER _capture_{table}_u AFTER UPDATE ON [{table}] BEGIN {record('update', 'NEW', columns)}; END",
        f"CREATE TRIGGER _capture_{table}_d AFTER DELETE ON [{table}] BEGIN {record('delete', 'OLD', identity)}; END",
    ]


def _as_change(raw: dict) -> dict:
    # json_object nests objects as JSON text inside SQLite; decode them once here
    for part in ("key", "row"):
        if isinstance(raw.get(part), str):
            raw[part] = json.loads(raw[part])
    return raw


def _foreign(key: str, change: Mapping, tables: dict[str, set[str]]) -> str | None:
    """Why a change is not this job's to make (or not a change of this schema), or None."""
    table, ident, row = change["table"], change["key"], change.get("row") or {}
    if table not in tables:
        return f"table '{table}', which a job may not write"
    unknown = sorted(set(ident) - tables[table] | set(row) - tables[table])
    if unknown:
        return f"unknown columns {unknown} in '{table}'"
    if change["op"] not in ("upsert", "update", "delete"):
        return f"an unknown operation '{change['op']}' on '{table}'"
    owner = ident.get("key") if table == "jobs" else ident.get("job_key", row.get("job_key"))
    if owner != key:
        return f"a row of job {str(owner)[:12]} in '{table}'"
    return None


def _apply_one(db, key: str, change: Mapping) -> None:
    table, op, ident, row = change["table"], change["op"], dict(change["key"]), dict(change.get("row") or {})
    where = " AND ".join(f"[{c}] IS ?" for c in ident)
    if op == "delete":
        db.conn.execute(f"DELETE FROM [{table}] WHERE {where}", list(ident.values()))
        return
    if table == "jobs":  # progress only: the queue's state belongs to the engine
        row = {c: row[c] for c in _JOB_COLUMNS if c in row}
        sets = ", ".join(f"[{c}] = ?" for c in row)
        db.conn.execute(f"UPDATE jobs SET {sets} WHERE key = ?", [*row.values(), key])
        return
    names = list(row)
    db.conn.execute(f"INSERT OR REPLACE INTO [{table}] ({', '.join(f'[{n}]' for n in names)})"
                    f" VALUES ({', '.join('?' * len(names))})", list(row.values()))
