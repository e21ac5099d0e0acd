"""DICOM decoding on a real chest radiograph (pydicom-data's RG1: CR, MONOCHROME1, 15 bits, also JPEG 2000)."""

from __future__ import annotations

import numpy as np
import pytest
import pydicom

from xaug.engine.data.dicom import dicom_patient_id, read_dicom
from xaug.engine.data.images import fit_square, read_image
from xaug.store.errors import DataError


@pytest.fixture(scope="module")
def rg1(rg1_uncompressed) -> np.ndarray:
    return read_dicom(rg1_uncompressed)


def test_uncompressed_and_jpeg2000_decode_to_the_same_pixels(rg1, rg1_jpeg2000):
    j2k = read_image(rg1_jpeg2000)
    assert rg1.dtype == np.uint8 and rg1.shape == (1955, 1841)
    assert np.array_equal(rg1, j2k)  # lossless JPEG 2000: identical after VOI, scaling and inversion
    assert np.array_equal(fit_square(rg1, 64), fit_square(j2k, 64))


def test_monochrome1_is_inverted_so_lungs_are_dark(rg1, rg1_uncompressed):
    assert pydicom.dcmread(rg1_uncompressed, stop_before_pixels=True).PhotometricInterpretation == "MONOCHROME1"
    h, w = rg1.shape
    rows = slice(int(0.3 * h), int(0.6 * h))
    lungs = (rg1[rows, int(0.2 * w):int(0.35 * w)].mean() + rg1[rows, int(0.65 * w):int(0.8 * w)].mean()) / 2
    mediastinum = rg1[rows, int(0.46 * w):int(0.54 * w)].mean()
    assert lungs + 40 < mediastinum
    assert rg1.min() < 60 and rg1.max() > 200  # the window fills most of the 8-bit range


def test_window_is_applied(rg1_uncompressed, tmp_path):
    ds = pydicom.dcmread(rg1_uncompressed)
    ds.WindowCenter, ds.WindowWidth = 20000, 4000  # a narrow window: most pixels saturate
    narrow = tmp_path / "narrow.dcm"
    ds.save_as(narrow)
    pixels = read_dicom(narrow)
    assert ((pixels == 0) | (pixels == 255)).mean() > 0.5


def test_patient_id_and_no_patient_name_in_errors(rg1_uncompressed, tmp_path):
    assert dicom_patient_id(rg1_uncompressed) == "9RG1"
    ds = pydicom.dcmread(rg1_uncompressed)
    ds.PatientName = "Doe^Jane"
    del ds.PixelData
    broken = tmp_path / "nopixels.dcm"
    ds.save_as(broken)
    with pytest.raises(DataError, match=r"nopixels\.dcm: the DICOM file has no pixel data") as err:
        read_dicom(broken)
    assert "Doe" not in str(err.value)


def test_corrupt_file_names_the_file(tmp_path, rg1_uncompressed):
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(rg1_uncompressed.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"truncated\.dcm: "):
        read_image(truncated)
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"this is not DICOM")
    with pytest.raises(DataError, match=r"garbage\.dcm: not a readable DICOM file"):
        read_image(garbage)
