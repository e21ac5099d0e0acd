"""Fixtures of the data tests: small PNG folders, the real chest radiograph of pydicom-data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_png(path: Path, value: int, size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
    """A small grey PNG (a gradient plus `value`, so that files differ)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = np.clip(value + rng.integers(0, 20, size=(size[1], size[0])), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _testdata(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} not found: pip install pydicom-data")
    return Path(path)


@pytest.fixture(scope="session")
def rg1_uncompressed() -> Path:
    """pydicom-data's chest radiograph, MONOCHROME1, 15 bits, uncompressed."""
    return _testdata("RG1_UNCR.dcm")


@pytest.fixture(scope="session")
def rg1_jpeg2000() -> Path:
    """The same radiograph, lossless JPEG 2000."""
    return _testdata("RG1_J2KR.dcm")


@pytest.fixture
def png_folder(tmp_path) -> Path:
    """A folder dataset: three classes, file names `P<patient>_<n>.png`, two or three images per patient."""
    root = tmp_path / "images"
    seed = 0
    for c, name in enumerate(["viral", "healthy", "bacterial"]):
        for patient in range(c * 10, c * 10 + 6):
            for n in range(2 + patient % 2):
                seed += 1
                write_png(root / name / f"P{patient:03d}_{n}.png", 40 * c + 30, seed=seed)
    return root
