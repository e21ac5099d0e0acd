"""Fixtures for TUI tests: a fake store with every kind of row (built by tui_fake_store)."""

from __future__ import annotations

import pytest
from tui_fake_store import build_store


@pytest.fixture
def fake_store(tmp_path):
    """Path to a populated fake store (engine up, a running generator)."""
    path = tmp_path / "demo.db"
    build_store(path).conn.close()
    return path


@pytest.fixture
def still_store(tmp_path):
    """Path to a fake store without clocks (no heartbeat, no running start time): stable for snapshots."""
    path = tmp_path / "still.db"
    build_store(path, live=False).conn.close()
    return path


@pytest.fixture
def anyio_backend():
    """Pilot tests run on asyncio through anyio's pytest plugin (anyio ships with httpx/textual's deps)."""
    return "asyncio"
