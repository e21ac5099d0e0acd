"""The common record of every data source: one image, its patient, its class and where it comes from."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from xaug.engine.errors import DataError
from xaug.engine.recipe.schema import SAFE_NAME


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset, before decoding."""

    image_id: str
    """Stable id within the dataset, `<class>/<n:05d>`: it never contains a file name or a patient id."""
    patient_id: str = field(repr=False)
    """The raw patient identifier: kept in memory only (left out of repr so it never lands in a log)."""
    label: str
    """Class name."""
    source: str
    """Where the pixels come from: a file path, or `phantom:<class>/<patient>/<image>` for the phantom."""


@dataclass
class RecordSet:
    """What a loader returns: records in a stable order, class names in order, and files it skipped."""

    records: list[ImageRecord]
    classes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(source, reason) of every file that could not be read and was skipped (on_unreadable: skip)."""


def number_records(items: Iterable[tuple[str, str, str]]) -> list[ImageRecord]:
    """Records from (patient_id, label, source) triples, sorted by (label, source) and numbered per class.

    Every source (folder names, CSV labels, the phantom) passes here, so this is where class names are checked:
    they become folder names of artifacts, and a label such as '../x' must never reach a path."""
    records: list[ImageRecord] = []
    counts: dict[str, int] = {}
    for patient_id, label, source in sorted(items, key=lambda item: (item[1], item[2])):
        if label not in counts:
            check_class_name(label, source)
        n = counts.get(label, 0)
        counts[label] = n + 1
        records.append(ImageRecord(f"{label}/{n:05d}", patient_id, label, source))
    return records


def check_class_name(label: str, source: str) -> None:
    """DataError naming the first image of a class whose name is not a safe path segment (see SAFE_NAME)."""
    if re.fullmatch(SAFE_NAME, label):
        return
    safer = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._-")[:100] or "class_1"
    raise DataError(f"{source}: its class {label!r} is not a usable class name: class names become folder names, "
                    "so they must be letters, digits, '_', '.' or '-', start with a letter or digit and be at most "
                    f"100 characters. Rename the class folder, or map the CSV label in dataset.csv.label_map "
                    f"(e.g. {label!r}: {safer})")


def order_classes(found: Iterable[str], wanted: Sequence[str] | None, where: str) -> list[str]:
    """The class order: `wanted` (dataset.classes) if given, else the sorted labels found; checks they agree."""
    found_set = set(found)
    if wanted is None:
        if len(found_set) < 2:
            raise DataError(f"{where}: found {len(found_set)} class(es) {sorted(found_set)};"
                            " a study needs at least two")
        return sorted(found_set)
    extra = sorted(found_set - set(wanted))
    if extra:
        raise DataError(f"{where}: labels {extra} are not in dataset.classes {list(wanted)};"
                        " add them to dataset.classes (or map them with dataset.csv.label_map)")
    missing = [c for c in wanted if c not in found_set]
    if missing:
        raise DataError(f"{where}: no images of class(es) {missing} listed in dataset.classes;"
                        " add images for them or remove them from dataset.classes")
    return list(wanted)


def handle_unreadable(source: str, reason: str, on_unreadable: str, skipped: list[tuple[str, str]]) -> None:
    """Apply dataset.on_unreadable to a file that could not be read: raise DataError, or note it as skipped."""
    if on_unreadable == "skip":
        skipped.append((source, reason))
        return
    raise DataError(f"{source}: {reason} (set dataset.on_unreadable: skip to skip such files and list them)")


def check_one_class_per_patient(items: Iterable[tuple[str, str, str]]) -> None:
    """(patient_id, label, source) triples: DataError naming two files when one patient has images of two classes.

    Folds are made per patient and stratified by the patient's class; a patient under two classes is almost always
    a wrong id (two people sharing one), and no class choice for them would be right, so it is never guessed.
    The patient id itself is not printed (it may be identifying); the two files are.
    """
    first: dict[str, tuple[str, str]] = {}
    for patient_id, label, source in items:
        seen_label, seen_source = first.setdefault(patient_id, (label, source))
        if seen_label != label:
            raise DataError(
                f"{seen_source} (class '{seen_label}') and {source} (class '{label}') have the same patient id;"
                " a patient's images must all be of one class for patient-level splits. Fix the patient id of one"
                " of them (dataset.patient_pattern, the DICOM PatientID or the CSV's patient column), remove the"
                " image that does not belong, or (CSV) set dataset.csv.on_mixed_patient: skip to leave such patients"
                " out")
