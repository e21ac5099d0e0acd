"""Fixtures of the engine tests: a private store and fake job kinds that the worker processes can import."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def fake_kinds(install_plugin):
    """The fake kinds `fake` and `fake_gpu`, installed as a plugin package that this process and its workers find."""
    kinds = ["fake", "fake_gpu"]
    install_plugin("xaug_fake_jobs", {"xaug.job_kinds": {kind: "xaug_fake_jobs:run" for kind in kinds}},
                   [HERE / "xaug_fake_jobs.py"])
    return kinds


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


