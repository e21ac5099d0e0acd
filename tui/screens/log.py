"""A job's log file, followed live (like `tail -f`)."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Log

from xaug.store import artifact_root
from xaug.store.jobs import load_job
from xaug.tui.messages import ElapsedTicked, StoreChanged

TAIL_BYTES = 64_000


def resolve_log_path(db_path: Path, log_path: str | None) -> Path | None:
    """A job's log file: absolute as stored, or relative to the artifact root."""
    if not log_path:
        return None
    path = Path(log_path)
    return path if path.is_absolute() else artifact_root(db_path) / path


def read_tail(path: Path | None, offset: int = 0) -> tuple[str, int]:
    """Text appended to a log since `offset` (at most the last TAIL_BYTES at first) and the new offset."""
    if path is None or not path.exists():
        return "", offset
    size = path.stat().st_size
    if size < offset:  # the log was rotated or rewritten (a retry)
        offset = 0
    start = max(offset, size - TAIL_BYTES) if offset == 0 else offset
    with path.open("rb") as handle:
        handle.seek(start)
        data = handle.read(size - start)
    return data.decode("utf-8", errors="replace"), size


class LogScreen(Screen):
    """The log of one job; new lines appear as the job writes them."""

    BINDINGS = [("escape,q", "app.pop_screen", "Back")]

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.log_offset = 0
        self.log_file: Path | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Log(id="log", highlight=True)
        yield Footer()

    def on_mount(self) -> None:
        """Find the log file and show its tail."""
        self._locate()
        if self.log_file is None or not self.log_file.exists():
            self.query_one(Log).write_line(f"no log file yet ({self.log_file or 'the job has not started'})")
        self.follow()

    def _locate(self) -> None:
        """Read where the job logs (a queued job has no log path until it starts)."""
        job = load_job(self.app.db, self.key)
        self.sub_title = f"log of {job['label'] if job else self.key[:12]}"
        self.log_file = resolve_log_path(self.app.db_path, job and job.get("log_path"))

    @on(StoreChanged)
    def _store_changed(self) -> None:
        if self.log_file is None:
            self._locate()
        self.follow()

    @on(ElapsedTicked)
    def follow(self) -> None:
        """Append what the job wrote since the last look."""
        text, self.log_offset = read_tail(self.log_file, self.log_offset)
        if text:
            self.query_one(Log).write(text)
