"""Store faults: disk full, a read-only store, a file that is not SQLite, concurrent first opens, a dead engine.

Each ends as one line that says what happened and what to do, with no traceback and no change to a file xaug did
not create. The tests run as root on a shared machine, where neither a full disk nor a read-only file can be made
for real (root writes through file modes), so SQLite is asked to act them out on the store's own connection:
`PRAGMA max_page_count` (at the current size: the next page needed is refused with SQLITE_FULL, "database or disk
is full", the very error of a full disk) and `PRAGMA query_only` (every write is refused with SQLITE_READONLY, the
error of a read-only file or mount).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading

import pytest
from xaug.engine.errors import StoreError
from xaug.store import open_store

RECIPE = """\
name: faults
dataset: {source: phantom, image_size: 32, phantom: {scale: 0.1}}
splits: {folds: 2}
classifiers:
  - {model: resnet10t, epochs: 1}
amounts: [0, 50]
seeds: [0, 1, 2]
resources: {device: cpu}
"""


def _xaug(*args: str, monkeypatch=None, capsys=None) -> tuple[int, str, str]:
    """Run the `xaug` entry point in this process (its own error handling included): exit status, stdout, stderr."""
    from xaug.engine.cli import main

    monkeypatch.setattr(sys, "argv", ["xaug", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, " ".join(captured.out.split()), captured.err


def _one_clean_line(err: str) -> str:
    text = " ".join(err.split())
    assert "Traceback" not in err and text.startswith("error:"), err
    return text


def _acting_store(monkeypatch, pragma: str):
    """Make every store the CLI opens act out a fault through `pragma` (formatted with its page count)."""
    import xaug.engine.queue.engine  # noqa: F401  modules that bind open_store at import: bind the real one now,
    import xaug.engine.queue.slurm  # noqa: F401  or they keep the faulty one for every later test in this process
    import xaug.store

    real = xaug.store.open_store

    def faulty(path, **kwargs):
        db = real(path, **kwargs)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(pragma.format(pages=pages))
        return db

    monkeypatch.setattr(xaug.store, "open_store", faulty)


def test_disk_full_on_submit_is_one_clear_line(tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "faults.yaml"
    recipe.write_text(RECIPE)
    store = tmp_path / "full.db"
    open_store(store).conn.close()
    _acting_store(monkeypatch, "PRAGMA max_page_count = {pages}")
    code, _, err = _xaug("submit", recipe, "--store", store, monkeypatch=monkeypatch, capsys=capsys)
    text = _one_clean_line(err)
    assert code == 2 and "is full" in text and "free some space" in text
    db = open_store(store)
    assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0  # the failed submit left nothing half done


def test_read_only_store_is_one_clear_line(tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "faults.yaml"
    recipe.write_text(RECIPE)
    store = tmp_path / "ro.db"
    open_store(store).conn.close()
    _acting_store(monkeypatch, "PRAGMA query_only = 1")
    code, _, err = _xaug("submit", recipe, "--store", store, monkeypatch=monkeypatch, capsys=capsys)
    text = _one_clean_line(err)
    assert code == 2 and "is read-only" in text and "writable" in text


def test_a_file_that_is_not_sqlite_is_left_as_it_was(tmp_path, monkeypatch, capsys):
    junk = tmp_path / "notes.db"
    junk.write_bytes(b"my lab notes, not a database\n" * 200)
    os.chmod(junk, 0o644)
    with pytest.raises(StoreError, match="is not an xaug store"):
        open_store(junk)
    code, _, err = _xaug("status", "--store", junk, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "notes.db is not an xaug store" in _one_clean_line(err)
    assert stat.S_IMODE(os.stat(junk).st_mode) == 0o644
    assert junk.read_bytes() == b"my lab notes, not a database\n" * 200
    assert not (tmp_path / "notes.db-wal").exists()


def test_only_files_xaug_creates_are_made_private(tmp_path):
    import sqlite3

    theirs = tmp_path / "shared.db"
    sqlite3.connect(theirs).close()
    os.chmod(theirs, 0o644)
    open_store(theirs).conn.close()
    assert stat.S_IMODE(os.stat(theirs).st_mode) == 0o644
    mine = tmp_path / "new.db"
    open_store(mine).conn.close()
    assert stat.S_IMODE(os.stat(mine).st_mode) == 0o600


def test_concurrent_first_opens_of_a_new_store_take_turns(tmp_path):
    from xaug.store.migrations import migrations

    for trial in range(3):
        path = tmp_path / f"new{trial}.db"
        start = threading.Barrier(3)
        errors = []

        def first_open():
            start.wait()
            try:
                open_store(path).conn.close()
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))

        threads = [threading.Thread(target=first_open) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        db = open_store(path)
        names = [row["name"] for row in db["_sqlite_migrations"].rows]
        assert len(names) == len(set(names)) and not migrations.pending(db)


def test_three_concurrent_first_submits_from_the_command_line(tmp_path):
    recipe = tmp_path / "faults.yaml"
    recipe.write_text(RECIPE)
    store = tmp_path / "together.db"
    command = [sys.executable, "-c", "from xaug.engine.cli import main; main()", "submit", str(recipe),
               "--store", str(store), "--json"]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in processes]
    for out, err, code in results:
        assert code == 0 and "Traceback" not in err, err
    import json

    news = sorted(json.loads(out)["new"] for out, _, _ in results)
    jobs = json.loads(results[0][0])["jobs"]
    assert news == [0, 0, jobs]  # one submit added the jobs; the others found them queued
    assert open_store(store).execute("SELECT count(*) FROM jobs").fetchone()[0] == jobs


def test_an_engine_that_died_holding_the_lock_is_shown_as_not_running(tmp_path, monkeypatch, capsys):
    import json
    import socket

    from xaug.store import jobs as q

    store = tmp_path / "dead.db"
    db = open_store(store)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid is free now: like an engine killed by a full disk before it could release the lock
    assert q.claim_engine(db, gone.pid, socket.gethostname(), lambda row: True) is None
    code, out, _ = _xaug("status", "--store", store, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and f"no engine running: engine pid {gone.pid}" in out and "died" in out
    code, out, _ = _xaug("status", "--store", store, "--json", monkeypatch=monkeypatch, capsys=capsys)
    assert json.loads(out)["engine"]["alive"] is False
