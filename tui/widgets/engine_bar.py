"""One line above the queue: engine up/down, queue paused, GPU utilisation/memory and job counts."""

from __future__ import annotations

import datetime as _dt

from rich.text import Text
from textual.widgets import Static

from xaug.tui.widgets.job_table import parse_stamp, format_duration

ENGINE_STALE_S = 15.0
"""An engine whose heartbeat is older than this is shown as down (it beats every 2 s)."""


def engine_liveness(heartbeat_at: str | None) -> tuple[bool, float | None]:
    """(up, seconds since the heartbeat) for an engine heartbeat timestamp; recomputed as time passes."""
    then = parse_stamp(heartbeat_at)
    if then is None:
        return False, None
    age = (_dt.datetime.now(_dt.timezone.utc) - then).total_seconds()
    return age < ENGINE_STALE_S, age


def engine_state(engine: dict | None, paused: bool) -> dict:
    """The bar's view of the store's engine row (None: no engine holds the store) and the pause flag."""
    state = {"up": False, "pid": None, "host": None, "heartbeat_at": None, "heartbeat_age_s": None, "paused": paused}
    if engine:
        up, age = engine_liveness(engine["heartbeat_at"])
        state.update(pid=engine["pid"], host=engine["host"], heartbeat_at=engine["heartbeat_at"],
                     heartbeat_age_s=age, up=up)
    return state


def engine_line(engine: dict, gpus: list[dict], counts: dict[str, int]) -> Text:
    """The bar's text from the store's engine row, GPU stats and counts per status."""
    text = Text()
    if engine.get("up"):
        text.append(" ENGINE UP ", style="bold black on green")
        text.append(f" pid {engine['pid']}@{engine['host']}")
    else:
        age = engine.get("heartbeat_age_s")
        text.append(" ENGINE DOWN ", style="bold white on red")
        text.append(f" last heartbeat {format_duration(age)} ago" if age is not None else " no engine serves this store")
    if engine.get("paused"):
        text.append("  ")
        text.append(" PAUSED ", style="bold black on yellow")
    for gpu in gpus:
        util = gpu.get("utilization")
        used, total = gpu.get("memory_used_mb"), gpu.get("memory_total_mb")
        text.append(f"  GPU{gpu['gpu']} ", style="bold")
        text.append(f"{util:.0f}%" if util is not None else "?%")
        if used is not None and total:
            text.append(f" {used / 1024:.1f}/{total / 1024:.0f}G")
    if not gpus:
        text.append("  no GPU stats", style="dim")
    text.append("  | ")
    for status, n in counts.items():
        if status != "total":
            text.append(f"{status} {n}  ")
    return text


class EngineBar(Static):
    """Shows the engine's state; the screen sets it with `show` after each store read."""

    def show(self, engine: dict, gpus: list[dict], counts: dict[str, int]) -> None:
        """Render the latest engine state."""
        self._state = (engine, gpus, counts)
        self._draw(engine)

    def _draw(self, engine: dict) -> None:
        self.update(engine_line(engine, *self._state[1:]))

    def tick(self) -> None:
        """Age the heartbeat without a query: a dead engine commits nothing, so no store change would tell us."""
        if getattr(self, "_state", None) is None:
            return
        engine, gpus, counts = self._state
        if engine.get("heartbeat_at"):
            engine = dict(engine)
            engine["up"], engine["heartbeat_age_s"] = engine_liveness(engine["heartbeat_at"])
        self._draw(engine)
