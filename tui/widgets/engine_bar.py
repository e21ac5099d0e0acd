"""One line above the queue: engine up/down, queue paused, GPU utilisation/memory and job counts."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from xaug.store.views import engine_liveness
from xaug.tui.widgets.job_table import format_duration


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
        text.append(f"{status} {n}  ")
    return text


class EngineBar(Static):
    """Shows the engine's state; the screen sets it with `show` after each store read."""

    def show(self, engine: dict, gpus: list[dict], counts: dict[str, int]) -> None:
        """Render the latest engine state."""
        self._state = (engine, gpus, counts)
        self.update(engine_line(engine, gpus, counts))

    def tick(self) -> None:
        """Age the heartbeat without a query: a dead engine commits nothing, so no store change would tell us."""
        if getattr(self, "_state", None) is None:
            return
        engine, gpus, counts = self._state
        if engine.get("heartbeat_at"):
            engine = dict(engine)
            engine["up"], engine["heartbeat_age_s"] = engine_liveness(engine["heartbeat_at"])
        self.update(engine_line(engine, gpus, counts))
