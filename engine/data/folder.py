"""A folder with one sub-folder per class of PNG, JPEG or DICOM files (sub-folders inside a class are searched too).

The patient of an image is, in this order: the group of `dataset.patient_pattern` matched against the file name;
the DICOM PatientID; else, only when the recipe says `dataset.one_patient_per_image: true`, the image is its own
patient (its path below the class folder). Without any of these the images of one patient could land in both the
training and the test split, so a file without a patient id is an error naming it. One patient under two classes
is an error naming both files.
"""

from __future__ import annotations

import re
from pathlib import Path

from xaug.engine.data.dicom import dicom_patient_id
from xaug.engine.data.images import is_dicom_path, is_image_file
from xaug.engine.data.records import (
    RecordSet,
    check_one_class_per_patient,
    handle_unreadable,
    number_records,
    order_classes,
)
from xaug.engine.errors import DataError
from xaug.engine.recipe.schema import DatasetConfig


def load_folder(cfg: DatasetConfig) -> RecordSet:
    """Records of every image below `cfg.path`, one class per sub-folder; unreadable headers follow on_unreadable."""
    if cfg.path is None:
        raise DataError("dataset.path is not set: source 'folder' needs the folder with one sub-folder per class")
    root = Path(cfg.path)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (source: folder wants one sub-folder of images per class)")
    class_dirs = class_folders(root)
    if not class_dirs:
        raise DataError(f"{root}: no class sub-folders found; put each class's images in a folder named after it")
    pattern = compile_patient_pattern(cfg.patient_pattern)
    items: list[tuple[str, str, str]] = []
    skipped: list[tuple[str, str]] = []
    for class_dir in class_dirs:
        found, dropped = len(items), len(skipped)
        for path in class_images(class_dir):
            try:
                patient = _patient_of(path, pattern)
            except DataError as exc:
                handle_unreadable(str(path), str(exc).removeprefix(f"{path}: "), cfg.on_unreadable, skipped)
                continue
            if patient is None:
                if not cfg.one_patient_per_image:
                    raise DataError(_no_patient_id(path))
                patient = f"{class_dir.name}/{path.relative_to(class_dir).with_suffix('')}"
            items.append((patient, class_dir.name, str(path)))
        if len(items) == found:  # dropping the class would quietly change the study's classes
            raise DataError(_empty_class(class_dir, skipped[dropped:]))
    if not items:
        raise DataError(f"{root}: no PNG, JPEG or DICOM files found in the class sub-folders")
    check_one_class_per_patient(items)
    classes = order_classes({label for _, label, _ in items}, cfg.classes, str(root))
    return RecordSet(number_records(items), classes, skipped)


def class_folders(root: Path) -> list[Path]:
    """The class sub-folders of a dataset folder, sorted (hidden folders are not classes)."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_images(class_dir: Path) -> list[Path]:
    """The image files below one class folder, sorted (the files a folder dataset reads; see fingerprint.py)."""
    return sorted(p for p in class_dir.rglob("*") if is_image_file(p))


def compile_patient_pattern(pattern: str | None) -> re.Pattern | None:
    """Compile dataset.patient_pattern, which must have exactly one group (the patient id)."""
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise DataError(f"dataset.patient_pattern {pattern!r} is not a valid regular expression: {exc}") from exc
    if compiled.groups != 1:
        raise DataError(f"dataset.patient_pattern {pattern!r} has {compiled.groups} groups; it needs exactly one,"
                        r" the patient id, e.g. '^(P\d+)_'")
    return compiled


def first_file_without_patient_id(root: Path) -> Path | None:
    """The first PNG/JPEG file below a folder dataset's class folders (such files carry no patient id), or None.

    Only file names are looked at, so this is cheap enough for `xaug recipe check`; DICOM files may still lack a
    PatientID, which only reading them (load_folder) tells.
    """
    for class_dir in class_folders(root):
        for path in class_images(class_dir):
            if not is_dicom_path(path):
                return path
    return None


def _patient_of(path: Path, pattern: re.Pattern | None) -> str | None:
    """The patient id of one file from the pattern or the DICOM PatientID; None when the file has none."""
    if pattern is not None:
        match = pattern.search(path.name)
        if match is None or not match.group(1):
            # Guessing here could put one patient's images in both training and test splits.
            raise DataError(f"{path}: dataset.patient_pattern {pattern.pattern!r} does not match the file name;"
                            " fix the pattern or rename the file")
        return match.group(1)
    if is_dicom_path(path):
        return dicom_patient_id(path)
    return None


def _empty_class(class_dir: Path, skipped: list[tuple[str, str]]) -> str:
    """The message for a class folder without a usable image: none there, or every one skipped (and why)."""
    if not skipped:
        return (f"{class_dir}: the folder of class '{class_dir.name}' holds no PNG, JPEG or DICOM file; add its "
                "images, or move the folder out of the dataset")
    source, reason = skipped[0]
    return (f"{class_dir}: all {len(skipped)} image(s) of class '{class_dir.name}' were skipped "
            f"(dataset.on_unreadable: skip), e.g. {source}: {reason}")


def _no_patient_id(path: Path) -> str:
    """The leakage guard's message for a file without a patient id."""
    what = "this DICOM file has no PatientID" if is_dicom_path(path) else "a PNG/JPEG file carries no patient id"
    return (f"{path}: {what} and dataset.patient_pattern is not set, so images of one patient could land in both"
            " the training and the test split. Set dataset.patient_pattern to a regular expression whose one group"
            r" extracts the patient id from file names (e.g. '^(P\d+)_'), or set dataset.one_patient_per_image: true"
            " if every image without an id is a different patient")
