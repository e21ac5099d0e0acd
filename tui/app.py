"""`xaug-tui`: the App (screens as modes, one store poller) and its entry point."""

from __future__ import annotations

import argparse
from pathlib import Path

import sqlite_utils
from textual.app import App, ScreenStackError
from textual.reactive import reactive

# Imported before the app starts: textual-image asks the terminal about sixel/kitty support at import time.
import xaug.tui.widgets.images  # noqa: F401
from xaug.store import data_version, open_store, views
from xaug.tui.messages import ElapsedTicked, StoreChanged
from xaug.tui.screens.gallery import GalleryScreen
from xaug.tui.screens.queue import QueueScreen
from xaug.tui.screens.reader import ReaderScreen
from xaug.tui.screens.study import StudyScreen

POLL_S = 0.5


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
        self.db: sqlite_utils.Database = open_store(self.db_path)
        """The app's own connection: polls data_version and sends commands (small writes) from the UI thread."""
        self.poll_s = poll_s
        self._version = data_version(self.db)
        self._ticks = 0

    def open_writer(self) -> sqlite_utils.Database:
        """A fresh read-write connection for a worker thread (the caller closes it)."""
        return open_store(self.db_path, migrate=False)

    def on_mount(self) -> None:
        """Pick the newest study and start polling the store."""
        self.sub_title = str(self.db_path)
        studies = views.list_study_names(self.db)
        self.study = studies[0] if studies else None
        self.set_interval(self.poll_s, self.poll_store)

    def poll_store(self) -> None:
        """Tell the active screen when another connection committed (PRAGMA data_version), else tick its clocks."""
        try:
            screen = self.screen
        except ScreenStackError:  # starting up, switching modes or shutting down: poll again next tick
            return
        version = data_version(self.db)
        self._ticks += 1
        if version != self._version:
            self._version = version
            if self.study is None:
                studies = views.list_study_names(self.db)
                self.study = studies[0] if studies else None
            screen.post_message(StoreChanged(version))
        elif self._ticks % max(int(1 / self.poll_s), 1) == 0:
            screen.post_message(ElapsedTicked())

    def action_next_study(self) -> None:
        """Show the next study (study, gallery and reader screens follow)."""
        studies = views.list_study_names(self.db)
        if not studies:
            self.notify("no studies in the store yet", severity="warning")
            return
        self.study = studies[(studies.index(self.study) + 1) % len(studies)] if self.study in studies else studies[0]
        self.notify(f"study {self.study}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: `xaug-tui [--store DB]`."""
    from xaug.engine.cli import default_store
    from xaug.store.errors import XaugError

    parser = argparse.ArgumentParser(prog="xaug-tui", description="Watch and inspect xaug studies in the terminal.",
                                     epilog="example: xaug-tui --store runs/paper.db")
    parser.add_argument("--store", default=None, help="the study database (default: $XAUG_STORE or ./xaug.db)")
    args = parser.parse_args(argv)
    store = Path(args.store or default_store())
    if not store.exists():
        raise SystemExit(f"xaug-tui: no store at {store}; pass --store PATH or submit a recipe first"
                         f" (xaug submit recipes/quickstart.yaml)")
    try:
        XaugApp(store).run()
    except XaugError as exc:
        raise SystemExit(f"xaug-tui: {exc}") from exc
