"""Real versus synthetic images side by side, per class and per generator."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from xaug.store import artifact_root
from xaug.store.artifacts import load_study_samples
from xaug.store.studies import study_classes
from xaug.tui.messages import StoreChanged
from xaug.tui.widgets.images import ImagePane, image_mode, mosaic, open_png, real_image, real_image_folder, real_rows

TILES = 8
"""Images per side: two rows of four, so the tiles fit the pane at their own aspect ratio."""


class GalleryScreen(Screen):
    """Left: real images of a class; right: one generator's samples of that class. Keys move class / generator."""

    BINDINGS = [
        Binding("up", "move_class(-1)", "Class-", priority=True),
        Binding("down", "move_class(1)", "Class+", priority=True),
        Binding("left", "move_generator(-1)", "Generator-", priority=True),
        Binding("right", "move_generator(1)", "Generator+", priority=True),
        ("n", "app.next_study", "Next study"),
    ]

    class SourcesFetched(Message):
        """A worker listed the study's classes, generators and image locations."""

        def __init__(self, data: dict) -> None:
            super().__init__()
            self.data = data

    class ImagesLoaded(Message):
        """A worker tiled the images of the current class and generator."""

        def __init__(self, real, synthetic, class_name: str, generator: str | None) -> None:
            super().__init__()
            self.real, self.synthetic, self.class_name, self.generator = real, synthetic, class_name, generator

    def __init__(self) -> None:
        super().__init__()
        self.class_names: list[str] = []
        self.generators: list[str] = []
        self.class_index = 0
        self.generator_index = 0
        self.data: dict = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="gallery-title")
        with Horizontal(id="gallery-body"):
            with Vertical(classes="gallery-pane"):
                yield Static("real", id="real-caption", classes="caption")
                yield ImagePane(image_id="real-image", id="real-pane", classes="image-box")
            with Vertical(classes="gallery-pane"):
                yield Static("synthetic", id="synthetic-caption", classes="caption")
                yield ImagePane(image_id="synthetic-image", id="synthetic-pane", classes="image-box")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "study", lambda _: self.load_sources(), init=False)
        self.load_sources()

    def on_screen_resume(self) -> None:
        """Coming back to the gallery: samples may have been written meanwhile."""
        self.load_sources()

    @on(StoreChanged)
    def _store_changed(self) -> None:
        self.load_sources()

    @property
    def class_name(self) -> str | None:
        """The class shown."""
        return self.class_names[self.class_index] if self.class_names else None

    @property
    def generator(self) -> str | None:
        """The generator shown on the right."""
        return self.generators[self.generator_index] if self.generators else None

    @work(thread=True, exclusive=True, group="gallery-sources")
    def load_sources(self) -> None:
        """List classes, generators, sample paths and the real-image folder of the current study."""
        study = self.app.study
        data: dict = {"study": study, "classes": [], "samples": {}, "real_folder": None}
        if study:
            db = self.app.open_reader()
            try:
                data["samples"] = load_study_samples(db, study)
                data["classes"] = study_classes(db, study)
                data["real_folder"] = real_image_folder(db, self.app.db_path, study)
            finally:
                db.conn.close()
        self.post_message(self.SourcesFetched(data))

    def on_gallery_screen_sources_fetched(self, message: SourcesFetched) -> None:
        """Keep the current class/generator when still present, then load their images."""
        current = (self.class_name, self.generator)
        self.data = message.data
        samples = message.data["samples"]
        self.class_names = message.data["classes"] or sorted({c for per in samples.values() for c in per})
        self.generators = sorted(message.data["samples"])
        self.class_index = self.class_names.index(current[0]) if current[0] in self.class_names else 0
        self.generator_index = self.generators.index(current[1]) if current[1] in self.generators else 0
        self._show_title()
        self.load_images()

    def _show_title(self) -> None:
        study = self.data.get("study")
        if not study:
            self.query_one("#gallery-title", Static).update("no study in the store yet")
            return
        self.sub_title = f"gallery of {study}"
        self.query_one("#gallery-title", Static).update(
            f"study {study}   class {self.class_name or '-'} ({self.class_index + 1}/{len(self.class_names)}, ↑/↓)"
            f"   generator {self.generator or '-'} ({self.generator_index + 1}/{len(self.generators)}, ←/→)"
            f"   images: {image_mode()}")

    @work(thread=True, exclusive=True, group="gallery-images")
    def load_images(self) -> None:
        """Read and tile up to TILES real and TILES synthetic images of the current class."""
        class_name, generator, data = self.class_name, self.generator, self.data
        root = artifact_root(self.app.db_path)
        real = synthetic = None
        if class_name is not None:
            folder = data.get("real_folder")
            if folder is not None:
                real = mosaic([real_image(folder, i) for i in real_rows(folder, class_name, TILES)])
            paths = data.get("samples", {}).get(generator, {}).get(class_name, [])[:TILES]
            synthetic = mosaic([open_png(root, p) for p in paths])
        self.post_message(self.ImagesLoaded(real, synthetic, class_name, generator))

    def on_gallery_screen_images_loaded(self, message: ImagesLoaded) -> None:
        """Show the tiles (a late result for another class is dropped)."""
        if (message.class_name, message.generator) != (self.class_name, self.generator):
            return
        self.query_one("#real-pane", ImagePane).show(message.real)
        self.query_one("#synthetic-pane", ImagePane).show(message.synthetic)
        self.query_one("#real-caption", Static).update(
            f"real · {message.class_name}" + ("" if message.real else "  (no real images found)"))
        self.query_one("#synthetic-caption", Static).update(
            f"synthetic · {message.generator} · {message.class_name}"
            + ("" if message.synthetic else "  (no samples)"))

    def action_move_class(self, delta: int) -> None:
        """Show the previous/next class."""
        if self.class_names:
            self.class_index = (self.class_index + delta) % len(self.class_names)
            self._show_title()
            self.load_images()

    def action_move_generator(self, delta: int) -> None:
        """Show the previous/next generator."""
        if self.generators:
            self.generator_index = (self.generator_index + delta) % len(self.generators)
            self._show_title()
            self.load_images()
