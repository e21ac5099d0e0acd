"""One line above the queue: engine up/down, queue paused, GPU utilisation/memory and job counts."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from xaug.store.liveness import age_s, engine_alive
from xaug.tui.widgets.job_table import format_duration


def engine_state(engine: dict | None, paused: bool) -> dict:
    """The bar's view of the store's engine row (None: no engine holds the store) and the pause flag; up or down by
    the store's one liveness rule (the engine's process on its own host, its heartbeat from elsewhere), which
    `EngineBar.tick` applies again as time passes."""
    state = {"up": False, "pid": None, "host": None, "heartbeat_at": None, "heartbeat_age_s": None, "paused": paused,
             "row": engine}
    if engine:
        state.update(pid=engine["pid"], host=engine["host"], heartbeat_at=engine["heartbeat_at"],
                     heartbeat_age_s=age_s(engine["heartbeat_at"]), up=engine_alive(engine))
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
        self._draw(engine_state(engine["row"], engine["paused"]))
