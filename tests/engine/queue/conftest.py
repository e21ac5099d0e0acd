"""Fixtures of the engine tests: a private store and fake job kinds that the worker processes can import."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def fake_kinds(monkeypatch):
    """Register the fake kinds for worker subprocesses (and this process)."""
    import os

    paths = [str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.setenv("XAUG_EXTRA_JOB_KINDS", "fake=xaug_fake_jobs,fake_gpu=xaug_fake_jobs")
    from xaug.engine.jobs import JOB_KINDS

    monkeypatch.setitem(JOB_KINDS, "fake", "xaug_fake_jobs")
    monkeypatch.setitem(JOB_KINDS, "fake_gpu", "xaug_fake_jobs")
    return ["fake", "fake_gpu"]


@pytest.fixture
def store_path(tmp_path):
    """Path of a fresh, migrated store."""
    from xaug.store import open_store

    path = tmp_path / "q.db"
    open_store(path).conn.close()
    return path


@pytest.fixture
def qdb(store_path):
    """An open connection to the fresh store."""
    from xaug.store import open_store

    db = open_store(store_path)
    yield db
    db.conn.close()


