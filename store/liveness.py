"""Whether the engine that holds a store's lock still runs: the one rule the engine, the CLI and the TUI apply.

On the engine's own host its process decides (at once, whatever the heartbeat says); from another host, only its
heartbeat can, and it beats every 2 s. Job heartbeats from workers on other hosts are judged by the same age.
"""

from __future__ import annotations

import datetime as _dt
import socket

import psutil

STALE_S = 60.0
"""A heartbeat older than this means its engine (or remote worker) is gone."""


def parse_stamp(stamp: str | None) -> _dt.datetime | None:
    """A timestamp written by the store (db.now) as an aware datetime; None for none."""
    if not stamp:
        return None
    value = _dt.datetime.fromisoformat(stamp)
    return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)


def age_s(stamp: str | None) -> float | None:
    """Seconds since a store timestamp; None for none."""
    then = parse_stamp(stamp)
    return None if then is None else (_dt.datetime.now(_dt.timezone.utc) - then).total_seconds()


def heartbeat_fresh(stamp: str | None) -> bool:
    """Whether a heartbeat is younger than STALE_S."""
    age = age_s(stamp)
    return age is not None and age < STALE_S


def engine_alive(row: dict | None, host: str | None = None) -> bool:
    """Whether the engine recorded in the store's engine `row` still runs, seen from `host` (default: this one):
    its process when it runs here (a recycled pid belongs to a process created after the engine took the lock),
    its heartbeat when it runs elsewhere."""
    if row is None:
        return False
    if row["host"] != (host or socket.gethostname()):
        return heartbeat_fresh(row["heartbeat_at"])
    started = parse_stamp(row["started_at"])
    try:
        proc = psutil.Process(row["pid"])
        return (started is not None and proc.create_time() <= started.timestamp() + 1.0
                and proc.status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
