"""Opening the study database: one SQLite file in WAL mode, created 0600, migrated on open."""

from __future__ import annotations

import datetime as _dt
import os
import sqlite3
from pathlib import Path

import sqlite_utils

from xaug.engine.errors import StoreError

BUSY_TIMEOUT_MS = 30_000


def now() -> str:
    """The current UTC time as an ISO-8601 string, the one timestamp format in the store."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def artifact_root(db_path: str | Path) -> Path:
    """The artifact folder that belongs to a database file: `runs/x.db` -> `runs/x-artifacts/`."""
    path = Path(db_path)
    return path.with_name(path.stem + "-artifacts")


def _create_private(path: Path) -> None:
    """Create the database file (and its folder) readable by the owning user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
    os.chmod(path, 0o600)


def open_store(db_path: str | Path, *, migrate: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the store at `db_path`, with WAL, a busy timeout and all migrations applied."""
    from xaug.store.migrations import migrations

    path = Path(db_path)
    if str(path) != ":memory:":
        try:
            _create_private(path)
        except OSError as exc:
            raise StoreError(f"cannot create the store at {path}: {exc.strerror}") from exc
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a usable SQLite database: {exc}") from exc
    db = sqlite_utils.Database(conn)
    if migrate:
        migrations.apply(db)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.chmod(side, 0o600)
    return db


def data_version(db: sqlite_utils.Database) -> int:
    """SQLite's data_version: changes whenever another connection commits, a cheap poll for live views."""
    return db.execute("PRAGMA data_version").fetchone()[0]
