"""`xaug-tui`: the App (screens as modes, one store poller, one way to write) and its entry point."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import sqlite_utils
import typer
from textual import work
from textual.app import App, ScreenStackError
from textual.reactive import reactive

# Imported before the app starts: textual-image asks the terminal about sixel/kitty support at import time.
import xaug.tui.widgets.images  # noqa: F401
from xaug.store.errors import StoreError, XaugError
from xaug.store import data_version, open_store
from xaug.store.db import store_errors
from xaug.store.studies import list_studies
from xaug.tui.messages import ElapsedTicked, StoreChanged
from xaug.tui.screens.gallery import GalleryScreen
from xaug.tui.screens.queue import QueueScreen
from xaug.tui.screens.reader import ReaderScreen
from xaug.tui.screens.study import StudyScreen

POLL_S = 0.1
"""How often PRAGMA data_version is asked (a few microseconds each): a change shows within this plus one read."""


class XaugApp(App):
    """The researcher's cockpit: queue, job detail, study, gallery and reader study over one store."""

    CSS_PATH = "xaug.tcss"
    TITLE = "xaug"
    MODES = {"queue": QueueScreen, "study": StudyScreen, "gallery": GalleryScreen, "reader": ReaderScreen}
    DEFAULT_MODE = "queue"
    BINDINGS = [
        ("f2", "switch_mode('queue')", "Queue"),
        ("f3", "switch_mode('study')", "Study"),
        ("f4", "switch_mode('gallery')", "Gallery"),
        ("f5", "switch_mode('reader')", "Reader"),
        ("ctrl+q", "quit", "Quit"),
    ]

    study: reactive[str | None] = reactive(None)
    """The study shown by the study, gallery and reader screens (the newest one at start)."""

    def __init__(self, db_path: str | Path, poll_s: float = POLL_S) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.read_only: str | None = None
        """Why the store cannot be written (then every command is refused with a notification), or None."""
        try:
            open_store(self.db_path).conn.close()  # applies pending migrations of a store from an older xaug
        except StoreError as exc:
            self.read_only = str(exc)
        self.db: sqlite_utils.Database = open_store(self.db_path, read_only=True)
        """The UI thread's connection: it only polls data_version and lists studies; writes go through `write`."""
        self.poll_s = poll_s
        self._version = data_version(self.db)
        self._ticks = 0

    def open_reader(self) -> sqlite_utils.Database:
        """A fresh read-only connection for a worker thread (the caller closes it)."""
        return open_store(self.db_path, read_only=True)

    def on_mount(self) -> None:
        """Pick the newest study and start polling the store."""
        self.sub_title = str(self.db_path)
        self._pick_study()
        self.set_interval(self.poll_s, self.poll_store)
        if self.read_only:
            self.notify(self.read_only, title="read-only: commands are disabled", severity="warning", timeout=15)

    def study_names(self) -> list[str]:
        """Study names, most recently updated first."""
        return [row["name"] for row in list_studies(self.db)]

    def _pick_study(self) -> None:
        if self.study is None:
            studies = self.study_names()
            self.study = studies[0] if studies else None

    def poll_store(self) -> None:
        """Tell the active screen when another connection committed (PRAGMA data_version), else tick its clocks."""
        try:
            screen = self.screen
        except ScreenStackError:  # starting up, switching modes or shutting down: poll again next tick
            return
        try:
            with store_errors(self.db_path):
                version = data_version(self.db)
        except StoreError as exc:  # a store that broke meanwhile: say so, keep running
            self.notify(str(exc), severity="error", title="store")
            return
        self._ticks += 1
        if version != self._version:
            self._version = version
            self._pick_study()
            screen.post_message(StoreChanged(version))
        elif self._ticks % max(int(1 / self.poll_s), 1) == 0:
            screen.post_message(ElapsedTicked())

    @work(thread=True, group="store-write")
    def write(self, action: Callable[[sqlite_utils.Database], str], done: Callable[[str], None] | None = None,
              what: str = "command") -> None:
        """Run a store write off the UI thread on its own connection; `done` gets its result on the UI thread.

        A busy, read-only or full store becomes a notification that says what happened, never a traceback."""
        if self.read_only:
            self.call_from_thread(self.notify, self.read_only, title=f"{what} not saved", severity="error")
            return
        try:
            db = open_store(self.db_path, migrate=False)
            try:
                with store_errors(self.db_path):
                    result = action(db)
            finally:
                db.conn.close()
        except XaugError as exc:
            self.call_from_thread(self.notify, str(exc), title=f"{what} failed", severity="error", timeout=15)
            return
        if done is not None:
            self.call_from_thread(done, result)

    def action_next_study(self) -> None:
        """Show the next study (study, gallery and reader screens follow)."""
        studies = self.study_names()
        if not studies:
            self.notify("no studies in the store yet", severity="warning")
            return
        self.study = studies[(studies.index(self.study) + 1) % len(studies)] if self.study in studies else studies[0]
        self.notify(f"study {self.study}")


cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@cli.command()
def run(store: Annotated[str | None, typer.Option(
        "--store", "-s", help="The study database; default $XAUG_STORE or ./xaug.db.")] = None) -> None:
    """Watch and inspect xaug studies in the terminal: queue, job detail, study results, gallery, reader study.

    Example: xaug-tui --store runs/paper.db
    """
    from xaug.engine.cli import default_store
    from xaug.store.db import require_store

    XaugApp(require_store(store or default_store())).run()


def main(argv: list[str] | None = None) -> None:
    """Entry point of `xaug-tui`: a user error (bad option, no store, unusable store) is one line on stderr and
    exit status 2, never a traceback."""
    from xaug.engine.cli.runner import run_cli

    run_cli(cli, "xaug-tui", argv)
