"""One rule for 'is the engine alive', used by the engine (taking over a lock), `xaug status` and the TUI's bar."""

from __future__ import annotations

import datetime as _dt
import os
import socket
import subprocess
import sys

import psutil
import pytest

from xaug.store import liveness
from xaug.store.db import now


def _stamp(seconds_ago: float) -> str:
    return (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=seconds_ago)).isoformat(timespec="milliseconds")


def _row(pid: int, host: str, started_at: str, heartbeat_at: str) -> dict:
    return {"pid": pid, "host": host, "started_at": started_at, "heartbeat_at": heartbeat_at}


def test_an_engine_on_this_host_is_judged_by_its_process_not_its_heartbeat():
    here = socket.gethostname()
    me = psutil.Process(os.getpid())
    started = _dt.datetime.fromtimestamp(me.create_time(), _dt.timezone.utc).isoformat()
    assert liveness.engine_alive(_row(os.getpid(), here, started, _stamp(3600)))  # old heartbeat, live process
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not liveness.engine_alive(_row(dead.pid, here, now(), now()))  # fresh heartbeat, process gone
    # a pid recycled by a process that started after the engine took the lock is not the engine
    assert not liveness.engine_alive(_row(os.getpid(), here, _stamp(10 * 365 * 86400), now()))


def test_an_engine_elsewhere_is_judged_by_its_heartbeat(monkeypatch):
    assert liveness.engine_alive(_row(1, "another-host", now(), _stamp(5)))
    assert not liveness.engine_alive(_row(1, "another-host", now(), _stamp(liveness.STALE_S + 1)))
    assert not liveness.engine_alive(None)
    assert liveness.age_s(None) is None and liveness.age_s(_stamp(10)) == pytest.approx(10, abs=1)
    assert liveness.parse_stamp("2026-01-01T00:00:00").tzinfo is not None  # naive stamps are UTC
