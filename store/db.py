"""Opening the study database: one SQLite file in WAL mode, created 0600, migrated on open."""

from __future__ import annotations

import datetime as _dt
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from xaug.store.errors import StoreError

BUSY_TIMEOUT_MS = 30_000
PRIVATE_UMASK = 0o077
"""Files and folders created by a process that opened a store: readable by the owning user only."""


MIGRATIONS_TABLE = "_sqlite_migrations"
"""Where sqlite-utils' Migrations records the applied migrations: a file with tables but not this one is not ours."""


def now() -> str:
    """The current UTC time as an ISO-8601 string, the one timestamp format in the store."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def artifact_root(db_path: str | Path) -> Path:
    """The artifact folder that belongs to a database file: `runs/x.db` -> `runs/x-artifacts/`."""
    path = Path(db_path)
    return path.with_name(path.stem + "-artifacts")


def _create_private(path: Path) -> bool:
    """Create the database file (and its folder) readable by the owning user only; True if it was created now.

    An existing file keeps its mode: it may not be xaug's, and its owner chose it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    os.chmod(path, 0o600)  # whatever the umask
    return True


def require_store(db_path: str | Path) -> Path:
    """`db_path` when a store file is there; otherwise the one StoreError that says how to make one."""
    path = Path(db_path)
    if not path.is_file():
        raise StoreError(f"no store at {path}: submit a recipe to create it (xaug submit RECIPE --store {path}), "
                         "or pass --store PATH or set XAUG_STORE")
    return path


def open_store(db_path: str | Path, *, migrate: bool = True, read_only: bool = False,
               create: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed, unless `create` is False) the store at `db_path`, with WAL, a busy timeout and all
    migrations applied; `read_only` opens an existing store for reading only (a viewer's worker thread: never
    creates, migrates or writes).

    Any SQLite failure (not a database, read-only, disk full, busy) is raised as a StoreError that says what to do.
    Every process that writes artifacts (engine, workers, `xaug` exports) opens its store first, so this is where
    the files they create are made private: from here on, files are 0600 and folders 0700 (they hold patient images,
    checkpoints trained on them, predictions).
    """
    from xaug.store.migrations import migrations

    os.umask(PRIVATE_UMASK)
    path = Path(db_path)
    if read_only:
        return _open_read_only(require_store(path))
    if not create:
        require_store(path)
    if str(path) != ":memory:":
        try:
            _create_private(path)
        except OSError as exc:
            raise StoreError(f"cannot create the store at {path}: {exc.strerror}; pass a --store in a folder "
                             "you can write to") from exc
    try:
        return _retry_while_busy(lambda: _connect(path, migrate, migrations))
    except sqlite3.Error as exc:
        raise store_error(exc, path) from exc


def _connect(path: Path, migrate: bool, migrations) -> sqlite_utils.Database:
    """One attempt at opening the store: pragmas (WAL, busy timeout), then pending migrations."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if migrate:
            _refuse_another_tools_database(conn, path)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        db = sqlite_utils.Database(conn)
        if migrate and migrations.pending(db):
            _migrate(db, migrations)
    except BaseException:
        conn.close()
        raise
    return db


def _refuse_another_tools_database(conn: sqlite3.Connection, path: Path) -> None:
    """A StoreError, before anything is written, for an SQLite file that holds tables but no xaug migrations: it
    belongs to another tool, and turning it into a store (WAL, xaug's tables) would change someone else's file."""
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    if tables and MIGRATIONS_TABLE not in tables:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreError(f"{path} is not an xaug store: it is an SQLite database with other tables ({shown}); "
                         "pass the right --store, or a new file name; it was left unchanged")


def _open_read_only(path: Path) -> sqlite_utils.Database:
    """A read-only connection to an existing store (usable from another thread than the one that opened it)."""
    try:
        conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise store_error(exc, path) from exc
    return sqlite_utils.Database(conn)


def _retry_while_busy(attempt, pause_s: float = 0.05):
    """Run `attempt` again while SQLite answers busy, for up to the busy timeout. Switching a new file to WAL and
    the first read of its schema can fail busy at once, without SQLite's busy handler (another process is creating
    the same store at that moment); a retry then finds the store ready."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
            busy = code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(pause_s)


def _migrate(db: sqlite_utils.Database, migrations) -> None:
    """Apply pending migrations under the write lock (BEGIN IMMEDIATE): processes that open a new store at the same
    moment take turns, and each finds what the previous one applied instead of creating the tables again."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        migrations.apply(db)  # each migration runs in a savepoint of this transaction
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


@contextmanager
def store_errors(path: str | Path | None = None) -> Iterator[None]:
    """Raise an SQLite failure inside the block (disk full, made read-only, ...) as a StoreError that says what
    happened and what to do: callers above the store handle one error class and never import sqlite3."""
    try:
        yield
    except sqlite3.Error as exc:
        raise store_error(exc, path) from exc


def store_error(exc: sqlite3.Error, path: str | Path | None = None) -> StoreError:
    """One line for an SQLite failure on the store: what happened, and what to do about it."""
    where = f"the store {path}" if path else "the store"
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # the primary result code
    if code == sqlite3.SQLITE_FULL:
        message = (f"the disk holding {where} is full ({exc}): free some space there (or use a --store on "
                   "another disk), then run the command again; finished work is kept")
    elif code == sqlite3.SQLITE_READONLY:
        message = (f"{where} is read-only ({exc}): make it and its folder writable (chmod u+w, or remount), or "
                   "pass a --store you can write to")
    elif code == sqlite3.SQLITE_NOTADB:
        message = (f"{where} is not an xaug store ({exc}): pass the right --store, or move that file away; "
                   "it was left unchanged")
    elif code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        message = (f"{where} stayed locked for {BUSY_TIMEOUT_MS // 1000} s ({exc}): another process holds it; "
                   "try again, or look for a stuck one with `fuser`")
    elif code == sqlite3.SQLITE_CANTOPEN:
        message = f"cannot open {where} ({exc}): check that its folder exists and is writable"
    else:
        message = f"{where} failed: {exc}"
    return StoreError(message)


def data_version(db: sqlite_utils.Database) -> int:
    """SQLite's data_version: changes whenever another connection commits, a cheap poll for live views."""
    return db.execute("PRAGMA data_version").fetchone()[0]
