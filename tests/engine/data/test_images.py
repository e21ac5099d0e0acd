"""Reading PNG/JPEG files of any depth to grey uint8, and letterboxing into a square."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from xaug.engine.data.images import fit_square, read_image
from xaug.store.errors import DataError


def test_sixteen_bit_png_is_scaled_to_its_range(tmp_path):
    pixels = np.linspace(1000, 4000, 20 * 10).reshape(10, 20).astype(np.uint16)
    Image.fromarray(pixels).save(tmp_path / "deep.png")
    out = read_image(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out.shape == (10, 20)
    assert out.min() == 0 and out.max() == 255 and np.all(np.diff(out.ravel().astype(int)) >= 0)


def test_colour_jpeg_becomes_grey(tmp_path):
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "green.jpg", quality=95)
    out = read_image(tmp_path / "green.jpg")
    assert out.shape == (16, 16) and abs(int(out.mean()) - round(0.587 * 200)) <= 3


def test_fit_square_letterboxes_without_cropping():
    tall = np.full((100, 50), 200, dtype=np.uint8)
    out = fit_square(tall, 40)
    assert out.shape == (40, 40)
    assert out[:, :9].max() == 0 and out[:, -9:].max() == 0  # black bars left and right
    assert out[:, 12:28].min() == 200 and out[0, 20] == 200 and out[-1, 20] == 200  # full height kept
    assert fit_square(out, 40) is out


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match=r"nothere\.png: file not found"):
        read_image(tmp_path / "nothere.png")
    (tmp_path / "fake.jpg").write_text("hello")
    with pytest.raises(DataError, match=r"fake\.jpg: not a readable PNG/JPEG image"):
        read_image(tmp_path / "fake.jpg")
