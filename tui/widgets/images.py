"""Images for the gallery, job detail and reader study: loading PNGs and real images, and tiling them.

`textual_image.widget` queries the terminal (sixel / kitty / half-cell) when imported, which must happen before
the app starts; xaug.tui.app imports this module at import time for that reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from textual_image.widget import Image  # noqa: F401  (re-exported: the one image widget of the TUI)

REAL_PREFIX = "real:"
"""Reader-study image paths of real images: `real:<folder relative to the artifact root>#<row in images.npy>`."""


def open_png(root: Path, relative: str) -> PILImage.Image:
    """A stored image (path relative to the artifact root) as a PIL image."""
    with PILImage.open(root / relative) as image:
        return image.convert("RGB")


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
    return PILImage.fromarray(np.asarray(images[row], dtype=np.uint8)).convert("RGB")


def load_reader_image(root: Path, image_path: str) -> PILImage.Image:
    """A reader-study image: a stored PNG, or a real image addressed as `real:<folder>#<row>`."""
    if image_path.startswith(REAL_PREFIX):
        folder, row = image_path[len(REAL_PREFIX):].rsplit("#", 1)
        return real_image(root / folder, int(row))
    return open_png(root, image_path)


def mosaic(images: list[PILImage.Image], columns: int = 4, tile: int = 96) -> PILImage.Image | None:
    """Tile images into one picture (`columns` per row, each `tile` pixels square); None when there are none."""
    if not images:
        return None
    rows = (len(images) + columns - 1) // columns
    sheet = PILImage.new("RGB", (columns * tile + (columns - 1) * 2, rows * tile + (rows - 1) * 2), (24, 24, 24))
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        sheet.paste(image.resize((tile, tile)), (c * (tile + 2), r * (tile + 2)))
    return sheet
