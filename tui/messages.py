"""App-wide messages: the store poller tells the active screen that the store changed."""

from __future__ import annotations

from textual.message import Message


class StoreChanged(Message):
    """Another connection (the engine, a worker, the CLI) committed to the store; `version` is PRAGMA data_version."""

    def __init__(self, version: int) -> None:
        super().__init__()
        self.version = version


class ElapsedTicked(Message):
    """A second passed with no store change: screens may refresh clocks (elapsed times) without querying."""
