"""DICOM radiographs to 8-bit grey images: Modality LUT, VOI LUT or window, MONOCHROME1 inverted.

Compressed transfer syntaxes (JPEG, JPEG-LS, JPEG 2000) are decoded by pylibjpeg and its plugins.
Patient names are never read into a message or a log; PatientID is read only to group images by patient.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from xaug.engine.errors import DataError

# Errors that mean "this file cannot be decoded", as opposed to a bug in xaug.
_DECODE_ERRORS = (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, KeyError, IndexError,
                  RuntimeError, NotImplementedError, EOFError, struct.error)


def is_dicom_file(path: str | Path) -> bool:
    """True if the file carries the DICOM preamble magic ('DICM' at byte 128)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def dicom_patient_id(path: str | Path) -> str | None:
    """The PatientID of a DICOM file (header only), or None when it is absent or empty."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
    except _DECODE_ERRORS as exc:
        raise DataError(f"{path}: cannot read the DICOM header ({_reason(exc)})") from exc
    value = str(ds.get("PatientID", "") or "").strip()
    return value or None


def dicom_geometry(path: str | Path) -> tuple[int, int, str]:
    """(width, height, 'DICOM <photometric> <bits>-bit') of a DICOM file, from its header only."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["Rows", "Columns", "PhotometricInterpretation", "BitsStored"])
    except _DECODE_ERRORS as exc:
        raise DataError(f"{path}: cannot read the DICOM header ({_reason(exc)})") from exc
    bits = ds.get("BitsStored", "?")
    return int(ds.get("Columns", 0)), int(ds.get("Rows", 0)), f"DICOM {ds.get('PhotometricInterpretation', '?')} {bits}-bit"


def read_dicom(path: str | Path) -> np.ndarray:
    """Decode a DICOM image to a 2-D uint8 array in display orientation (dense = bright)."""
    try:
        ds = pydicom.dcmread(path)
    except _DECODE_ERRORS as exc:
        raise DataError(f"{path}: not a readable DICOM file ({_reason(exc)})") from exc
    if "PixelData" not in ds:
        raise DataError(f"{path}: the DICOM file has no pixel data (is it a report or a structured document?)")
    try:
        arr = ds.pixel_array
    except _DECODE_ERRORS as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", str(syntax))
        raise DataError(f"{path}: cannot decode the pixel data (transfer syntax {name}: {_reason(exc)});"
                        " compressed files need pylibjpeg, pylibjpeg-openjpeg and pylibjpeg-libjpeg") from exc
    try:
        return _to_uint8(ds, arr)
    except _DECODE_ERRORS as exc:
        raise DataError(f"{path}: cannot apply the DICOM grey-scale transforms ({_reason(exc)})") from exc


def _to_uint8(ds: pydicom.Dataset, arr: np.ndarray) -> np.ndarray:
    """Modality LUT, VOI LUT/window, scaling to 0..255 and MONOCHROME1 inversion."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        arr = arr[0]  # a multi-frame radiograph: the first frame is the image
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return _colour_to_grey(arr)
    arr = apply_modality_lut(arr, ds)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        arr = apply_voi_lut(arr, ds, index=0, prefer_lut=True)
        low, high = _voi_output_range(ds, arr)
    else:
        low, high = float(np.min(arr)), float(np.max(arr))
    out = _scale(arr, low, high)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return out


def _voi_output_range(ds: pydicom.Dataset, arr: np.ndarray) -> tuple[float, float]:
    """The value range the VOI transform maps onto (as pydicom computes it), so that the window fills 0..255."""
    if "VOILUTSequence" in ds and ds.VOILUTSequence:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        low, high = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.get("PixelRepresentation", 0)) == 0:
        low, high = 0.0, float(2**bits - 1)
    else:
        low, high = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None and not ds.get("ModalityLUTSequence"):
        low, high = low * float(slope) + float(intercept), high * float(slope) + float(intercept)
    return (low, high) if high > low else (float(np.min(arr)), float(np.max(arr)))


def _scale(arr: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linear map of [low, high] onto 0..255 (a flat image becomes 0)."""
    if high <= low:
        return np.zeros(arr.shape, dtype=np.uint8)
    scaled = (np.asarray(arr, dtype=np.float64) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _colour_to_grey(arr: np.ndarray) -> np.ndarray:
    """A colour (RGB / YBR converted by pydicom) secondary capture to grey by luminance."""
    if arr.ndim == 3 and arr.shape[-1] == 3:
        grey = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
        return _scale(grey, float(grey.min()), float(grey.max()))
    return _scale(arr, float(np.min(arr)), float(np.max(arr)))


def _reason(exc: BaseException) -> str:
    """A one-line reason from an exception, without the DICOM dataset it may mention."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
