"""The blinded reader study: real and synthetic images in a random order per rater, rated with single keys.

Every image, real or synthetic, goes through the same preparation to the same size (`images.blinded`), so
neither its resolution nor its sharpness tells its source. Ratings are written off the UI thread."""

from __future__ import annotations

import random
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from xaug.store import artifact_root
from xaug.store.artifacts import load_study_samples
from xaug.store.ratings import REAL_SOURCE, rated_images, rating_summary, record_rating
from xaug.store.studies import load_study
from xaug.tui.screens.prompts import TextPrompt
from xaug.tui.widgets.images import (REAL_PREFIX, ImagePane, image_mode, image_side, load_reader_image,
                                     real_image_folder, real_rows)

PLAUSIBILITY_KEYS = {"a": 1, "s": 2, "d": 3}
GUESS_KEYS = {"r": "real", "f": "synthetic"}


def reader_items(samples: dict[str, dict[str, list[str]]], real_folder: Path | None, root: Path,
                 images_per_class: int, real_fraction: float, study: str, rater: str) -> list[dict]:
    """The blinded set for one rater: `images_per_class` per generator and class plus a `real_fraction` share of
    real images, shuffled with a seed from (study, rater) so a rater resumes the same order."""
    items = [dict(image_path=path, source=generator, class_name=class_name)
             for generator, per_class in sorted(samples.items())
             for class_name, paths in sorted(per_class.items())
             for path in paths[:images_per_class]]
    classes = sorted({item["class_name"] for item in items})
    if real_folder is not None and classes and real_fraction > 0:
        n_real = round(len(items) * real_fraction / (1 - real_fraction))
        per_class = -(-n_real // len(classes))
        folder = str(real_folder.relative_to(root))
        for class_name in classes:
            for row in real_rows(real_folder, class_name, per_class):
                items.append(dict(image_path=f"{REAL_PREFIX}{folder}#{row}", source=REAL_SOURCE,
                                  class_name=class_name))
    random.Random(f"{study}\x00{rater}").shuffle(items)
    return items


def common_side(root: Path, items: list[dict]) -> int:
    """The coarsest resolution among the sources in the set (one image of each source is read): every image is
    brought to it, so that a sharper source does not give itself away."""
    first_of_source = {}
    for item in items:
        first_of_source.setdefault(item["source"], item["image_path"])
    return min((image_side(root, path) for path in first_of_source.values()), default=1)


def reader_settings(db, study: str) -> dict:
    """The study recipe's reader_study section (images_per_class, real_fraction), the recipe's defaults where it
    is silent (one place for them: ReaderStudyConfig)."""
    from xaug.engine.recipe.schema import ReaderStudyConfig

    section = ((load_study(db, study) or {}).get("recipe") or {}).get("reader_study") or {}
    settings = ReaderStudyConfig.model_validate(section)
    return {"images_per_class": settings.images_per_class, "real_fraction": settings.real_fraction}


class ReaderScreen(Screen):
    """Asks the rater's name, then shows one image at a time without its source.

    Keys: 1-5 quality, a/s/d plausibility 1-3, r/f guess real/synthetic; the next image comes when all three are given.
    """

    BINDINGS = [
        *[Binding(str(q), f"quality({q})", "Quality 1-5", show=q == 1) for q in range(1, 6)],
        *[Binding(k, f"plausibility({v})", "Plausib. a/s/d", show=v == 1) for k, v in PLAUSIBILITY_KEYS.items()],
        ("r", "guess('real')", "Real"),
        ("f", "guess('synthetic')", "Synthetic"),
        ("space", "skip", "Skip"),
        ("t", "toggle_summary", "Summary"),
        ("w", "change_rater", "Rater"),
    ]

    class ItemsReady(Message):
        """A worker built the rater's image list."""

        def __init__(self, items: list[dict], done: set[str], study: str | None, rater: str, side: int) -> None:
            super().__init__()
            self.items, self.done, self.study, self.rater, self.side = items, done, study, rater, side

    class ImageLoaded(Message):
        """A worker decoded the current image."""

        def __init__(self, image, position: int) -> None:
            super().__init__()
            self.image, self.position = image, position

    def __init__(self) -> None:
        super().__init__()
        self.rater: str | None = None
        self.study: str | None = None
        self.items: list[dict] = []
        self.position = 0
        self.current: dict = {}
        self.side = 1
        """The common resolution every image of this rater's set is brought to."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="reader-status")
        with Horizontal(id="reader-body"):
            yield ImagePane(image_id="reader-image", id="reader-box", classes="image-box")
            with Vertical(id="reader-side"):
                yield Static("", id="reader-choice")
                yield Static("quality:       keys 1 (poor) .. 5 (excellent)\n"
                             "plausibility:  a = 1, s = 2, d = 3 (plausible)\n"
                             "real or not:   r = real, f = synthetic\n"
                             "space = skip, w = rater\n"
                             "t = summary per source (after the last image)", classes="hint")
                yield DataTable(id="reader-summary", cursor_type="none", classes="hidden")
        yield Footer()

    def on_mount(self) -> None:
        """Ask who is rating."""
        self.watch(self.app, "study", lambda _: self._start(), init=False)
        self.action_change_rater()

    def action_change_rater(self) -> None:
        """Ask for the rater's name (ratings are stored per rater)."""
        self.app.push_screen(TextPrompt("Reader study: your name (ratings are stored under it)", self.rater or ""),
                             self._rater_given)

    def _rater_given(self, name: str | None) -> None:
        if name:
            self.rater = name
            self._start()
        elif not self.rater:
            self.query_one("#reader-status", Static).update("no rater name given: press w to enter one")

    def _start(self) -> None:
        if self.rater:
            self.build_items(self.app.study, self.rater)

    @work(thread=True, exclusive=True, group="reader-items")
    def build_items(self, study: str | None, rater: str) -> None:
        """Build the blinded, shuffled list, its common resolution and what this rater has already rated."""
        items, done, side = [], set(), 1
        root = artifact_root(self.app.db_path)
        if study:
            db = self.app.open_reader()
            try:
                settings = reader_settings(db, study)
                items = reader_items(load_study_samples(db, study), real_image_folder(db, self.app.db_path, study),
                                     root, settings["images_per_class"], settings["real_fraction"], study, rater)
                done = rated_images(db, study, rater)
            finally:
                db.conn.close()
            side = common_side(root, items)
        self.post_message(self.ItemsReady(items, done, study, rater, side))

    def on_reader_screen_items_ready(self, message: ItemsReady) -> None:
        """Start at the first image this rater has not fully rated."""
        self.study, self.items, self.side = message.study, message.items, message.side
        self.position = next((i for i, item in enumerate(self.items) if item["image_path"] not in message.done),
                             len(self.items))
        self._show_current()

    @property
    def item(self) -> dict | None:
        """The image being rated."""
        return self.items[self.position] if 0 <= self.position < len(self.items) else None

    def _show_current(self) -> None:
        self.current = {}
        status = self.query_one("#reader-status", Static)
        if not self.items:
            status.update("no synthetic samples in this study yet: the reader study needs finished sample jobs")
            return
        if self.item is None:
            status.update(f"{self.rater}: all {len(self.items)} images rated, thank you (t = summary)")
            self.query_one("#reader-box", ImagePane).show(None)
            self._show_choice()
            return
        status.update(Text.assemble(("rater ", "dim"), (self.rater or "", "bold"), ("  study ", "dim"),
                                    (self.study or "", "bold"), f"  image {self.position + 1}/{len(self.items)}",
                                    (f"   images: {image_mode()}", "dim")))
        self._show_choice()
        self._load_image(self.item["image_path"], self.position)

    @work(thread=True, exclusive=True, group="reader-image")
    def _load_image(self, image_path: str, position: int) -> None:
        image = load_reader_image(artifact_root(self.app.db_path), image_path, self.side)
        self.post_message(self.ImageLoaded(image, position))

    def on_reader_screen_image_loaded(self, message: ImageLoaded) -> None:
        if message.position == self.position:
            self.query_one("#reader-box", ImagePane).show(message.image)

    def _show_choice(self) -> None:
        q, p, g = (self.current.get(k) for k in ("quality", "plausibility", "guess"))
        self.query_one("#reader-choice", Static).update(
            f"quality {q or '-'}/5   plausibility {p or '-'}/3   guess {g or '-'}")

    def _rate(self, **value) -> None:
        """Store one answer at once (nothing is lost on quit); move on once all three are given."""
        item = self.item
        if item is None or not self.rater or not self.study:
            return
        study, rater = self.study, self.rater

        def save(db) -> str:
            record_rating(db, study, rater, item["image_path"], item["source"], item["class_name"], **value)
            return ""

        self.app.write(save, what="rating")
        self.current.update(value)
        if all(self.current.get(k) is not None for k in ("quality", "plausibility", "guess")):
            self.position += 1
            self._show_current()
        else:
            self._show_choice()

    def action_quality(self, value: int) -> None:
        """Rate image quality 1 (poor) to 5 (excellent)."""
        self._rate(quality=value)

    def action_plausibility(self, value: int) -> None:
        """Rate clinical plausibility 1 (implausible) to 3 (plausible)."""
        self._rate(plausibility=value)

    def action_guess(self, value: str) -> None:
        """Guess whether the image is real or synthetic."""
        self._rate(guess=value)

    def action_skip(self) -> None:
        """Skip to the next image without rating it further."""
        if self.item is not None:
            self.position += 1
            self._show_current()

    def _show_summary(self) -> None:
        if not self.study:
            return
        table = self.query_one("#reader-summary", DataTable)
        table.clear(columns=True)
        table.add_columns("source", "raters", "rated", "quality", "plaus.", "% real")
        for row in rating_summary(self.app.db, self.study):
            table.add_row(row["source"], str(row["raters"]), str(row["n"]),
                          *("-" if row[k] is None else f"{row[k]:.2f}" for k in ("quality", "plausibility")),
                          "-" if row["guessed_real"] is None else f"{row['guessed_real'] * 100:.0f}%")

    def action_toggle_summary(self) -> None:
        """Show or hide the summary per source (generator or real), once this rater has finished: showing it
        earlier would tell the rater the source of the image just rated and break the blinding."""
        if self.item is not None:
            self.notify("the summary opens when you have rated every image (it would reveal sources)",
                        title="blinded", severity="warning")
            return
        self._show_summary()
        table = self.query_one("#reader-summary", DataTable)
        table.set_class(not table.has_class("hidden"), "hidden")
