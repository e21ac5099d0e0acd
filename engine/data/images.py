"""Reading an image file of any supported kind to grey uint8, and fitting it into a square.

Square images are made by letterboxing: the long side is resized to the target and the short side is padded
with black, centred. Unlike a centre crop, this never cuts off the costophrenic angles or the lung apices,
which is where findings often are; the black bars look like the unexposed border of a radiograph.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from xaug.engine.data.dicom import dicom_geometry, is_dicom_file, read_dicom
from xaug.store.errors import DataError

PIXEL_SUFFIXES = (".png", ".jpg", ".jpeg")
DICOM_SUFFIXES = (".dcm", ".dicom")


def is_image_file(path: Path) -> bool:
    """True for PNG/JPEG/DICOM files by suffix, and for suffix-less files with the DICOM magic."""
    if path.name.startswith(".") or not path.is_file():
        return False
    suffix = path.suffix.lower()
    return suffix in PIXEL_SUFFIXES or suffix in DICOM_SUFFIXES or (suffix == "" and is_dicom_file(path))


def is_dicom_path(path: Path) -> bool:
    """True if a file is read as DICOM (by suffix, or by its magic when it has none)."""
    suffix = path.suffix.lower()
    return suffix in DICOM_SUFFIXES or (suffix not in PIXEL_SUFFIXES and is_dicom_file(path))


def read_image(path: str | Path) -> np.ndarray:
    """Decode a PNG, JPEG or DICOM file to a 2-D uint8 array; DataError names the file and the reason."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if is_dicom_path(path):
        return read_dicom(path)
    return _read_pixels(path)


def image_geometry(path: str | Path) -> tuple[int, int, str]:
    """(width, height, mode) of an image file from its header, without decoding the pixels: Pillow's mode
    ('L', 'RGB', 'I;16', ...) for PNG/JPEG, 'DICOM <photometric> <bits>-bit' for DICOM."""
    path = Path(path)
    if is_dicom_path(path):
        return dicom_geometry(path)
    try:
        with Image.open(path) as img:
            return img.width, img.height, f"{img.format} {img.mode}"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise DataError(f"{path}: not a readable PNG/JPEG image ({exc})") from exc


def fit_square(image: np.ndarray, size: int) -> np.ndarray:
    """Letterbox a 2-D uint8 image into `size` x `size`: resize the long side, pad the short one with black."""
    height, width = image.shape
    if height == width == size:
        return image
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0))
    out = np.zeros((size, size), dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top:top + new_h, left:left + new_w] = resized
    return out


def _read_pixels(path: Path) -> np.ndarray:
    """PNG/JPEG via Pillow: colour to luminance, 16-bit scaled by its own range."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(img, dtype=np.float64)
                low, high = float(arr.min()), float(arr.max())
                if high <= low:
                    return np.zeros(arr.shape, dtype=np.uint8)
                return np.clip(np.rint((arr - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)
            return np.array(img.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a readable PNG/JPEG image ({text})") from exc
