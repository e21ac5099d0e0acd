"""Images for the gallery, job detail and reader study: loading PNGs and real images, preparing reader-study
images identically whatever their source, tiling, and an image pane that leaves no sixel pixels behind.

`textual_image.widget` queries the terminal (sixel / kitty / half-cell) when imported, which must happen before
the app starts; xaug.tui.app imports this module at import time for that reason.

Every image here stays grey-scale (PIL mode "L") up to the terminal. The sixel encoder hands an RGB image to an
octree quantiser that keeps only 16 of its grey levels, which erased faint detail (a GAN's rib stripes) and
posterised the body; an "L" image goes out with every level sixel can carry (101: it gives colours in percent).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import textual_image.renderable as renderables
from PIL import Image as PILImage
from textual.app import ComposeResult
from textual.containers import Container
from textual_image.widget import Image

from xaug.store import artifact_root
from xaug.store.artifacts import artifact_path
from xaug.store.jobs import study_jobs_of_kind

REAL_PREFIX = "real:"
"""Reader-study image paths of real images: `real:<folder relative to the artifact root>#<row in images.npy>`."""
READER_DISPLAY = 512
"""Side in pixels of every reader-study image as handed to the terminal."""


def image_mode() -> str:
    """How this terminal draws images: 'sixel', 'kitty graphics', 'half-cell' or 'text', with ' in tmux' inside
    tmux (tmux answers the sixel query itself: yes when it was built with sixel and the outer terminal has it;
    it passes no kitty graphics, so half-cell is used there otherwise)."""
    names = {renderables.SixelImage: "sixel", renderables.TGPImage: "kitty graphics",
             renderables.HalfcellImage: "half-cell", renderables.UnicodeImage: "text"}
    return names.get(renderables.Image, "?") + (" in tmux" if os.environ.get("TMUX") else "")


def open_png(root: Path, relative: str) -> PILImage.Image:
    """A stored image (path relative to the artifact root, which it may not leave) as a PIL image."""
    with PILImage.open(artifact_path(root, relative)) as image:
        return image.convert("L")


def real_image_folder(db, db_path: str | Path, study: str) -> Path | None:
    """The work folder of the study's prepare_data job (holds images.npy and index.json), if it exists."""
    for key, _ in study_jobs_of_kind(db, study, "prepare_data", status=None):
        folder = artifact_root(db_path) / "jobs" / "prepare_data" / key[:16]
        if (folder / "images.npy").exists():
            return folder
    return None


def _real_labels(index: dict, count: int) -> list[str]:
    """The class name of every row of images.npy, from index.json (labels as names or as class indices)."""
    labels = index.get("labels") or index.get("label") or []
    classes = index.get("classes") or []
    names = [classes[x] if isinstance(x, int) and x < len(classes) else str(x) for x in labels]
    return names[:count] + [""] * (count - len(names))


def real_rows(folder: Path, class_name: str, limit: int) -> list[int]:
    """Up to `limit` row numbers of images.npy in `folder` whose label is `class_name`."""
    images = np.load(folder / "images.npy", mmap_mode="r")
    index = json.loads((folder / "index.json").read_text())
    return [i for i, name in enumerate(_real_labels(index, len(images))) if name == class_name][:limit]


def real_image(folder: Path, row: int) -> PILImage.Image:
    """One real image (row of images.npy) as a PIL image."""
    images = np.load(folder / "images.npy", mmap_mode="r")
    return PILImage.fromarray(np.asarray(images[row], dtype=np.uint8))  # uint8 [H, W]: mode "L"


def load_image(root: Path, image_path: str) -> PILImage.Image:
    """A reader-study image as stored: a PNG, or a real image addressed as `real:<folder>#<row>`."""
    if image_path.startswith(REAL_PREFIX):
        folder, row = image_path[len(REAL_PREFIX):].rsplit("#", 1)
        return real_image(artifact_path(root, folder), int(row))
    return open_png(root, image_path)


def image_side(root: Path, image_path: str) -> int:
    """The shorter side in pixels of a reader-study image as stored."""
    return min(load_image(root, image_path).size)


def blinded(image: PILImage.Image, common_side: int, display: int = READER_DISPLAY) -> PILImage.Image:
    """The one way every reader-study image is prepared, real or synthetic: greyscale, centre-cropped square,
    brought to `common_side` (the coarsest resolution in the set: a 512 px radiograph next to a 128 px sample
    would give itself away by its sharpness), then scaled to `display` pixels with the same filter."""
    grey = image.convert("L")
    side = min(grey.size)
    left, top = (grey.width - side) // 2, (grey.height - side) // 2
    square = grey.crop((left, top, left + side, top + side))
    return (square.resize((common_side, common_side), PILImage.Resampling.LANCZOS)
            .resize((display, display), PILImage.Resampling.BICUBIC))


def load_reader_image(root: Path, image_path: str, common_side: int) -> PILImage.Image:
    """A reader-study image, prepared by `blinded`."""
    return blinded(load_image(root, image_path), common_side)


def mosaic(images: list[PILImage.Image], columns: int = 4, tile: int = 96) -> PILImage.Image | None:
    """Tile images into one picture (`columns` per row, each `tile` pixels square); None when there are none."""
    if not images:
        return None
    rows = (len(images) + columns - 1) // columns
    sheet = PILImage.new("L", (columns * tile + (columns - 1) * 2, rows * tile + (rows - 1) * 2), 24)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        sheet.paste(image.convert("L").resize((tile, tile)), (c * (tile + 2), r * (tile + 2)))
    return sheet


class ImagePane(Container):
    """A box showing one image at its own aspect ratio, that leaves nothing of the previous image behind.

    A sixel image is drawn by the terminal over cells that Textual believes are empty: a smaller or missing next
    image left the old pixels on screen. Changing the image therefore hides the image for one frame, so that the
    box paints its background (real spaces, which erase sixel pixels) over its whole area, then shows the new one.
    """

    def __init__(self, *, image_id: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self._image_id = image_id

    def compose(self) -> ComposeResult:
        yield Image(id=self._image_id)

    @property
    def image(self) -> PILImage.Image | None:
        """The image shown."""
        return self.query_one(Image).image

    def show(self, image: PILImage.Image | None) -> None:
        """Replace the image: blank the box for one frame, then draw the new one."""
        widget = self.query_one(Image)
        widget.display = False
        self.refresh()

        def draw() -> None:
            widget.image = image
            widget.display = image is not None

        self.call_after_refresh(draw)
