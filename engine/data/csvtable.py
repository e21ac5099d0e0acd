"""A metadata CSV with one row per image: path, label and patient columns (names set in dataset.csv).

Paths are relative to the CSV file's folder unless absolute. Labels go through dataset.csv.label_map first.
One patient id under two classes is an error naming both files, never a silent reassignment.
"""

from __future__ import annotations

import csv
from pathlib import Path

from xaug.engine.data.records import (
    RecordSet,
    check_one_class_per_patient,
    handle_unreadable,
    number_records,
    order_classes,
)
from xaug.store.errors import DataError
from xaug.engine.recipe.schema import DatasetConfig


def load_csv(cfg: DatasetConfig) -> RecordSet:
    """Records of every row of the CSV at `cfg.path`; bad rows raise DataError with file, row and column."""
    if cfg.path is None:
        raise DataError("dataset.path is not set: source 'csv' needs the metadata CSV file")
    table = Path(cfg.path)
    columns = cfg.csv
    known = _known_labels(cfg)
    items: list[tuple[str, str, str]] = []
    skipped: list[tuple[str, str]] = []
    try:
        with open(table, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            _check_header(table, reader.fieldnames, cfg)
            for row in reader:
                line = reader.line_num
                path = _cell(table, line, row, columns.path_column)
                raw_label = _cell(table, line, row, columns.label_column)
                patient = _cell(table, line, row, columns.patient_column)
                label = columns.label_map.get(raw_label, raw_label)
                if known is not None and label not in known:
                    raise DataError(f"{table}, row {line}, column '{columns.label_column}':"
                                    f" unknown label {raw_label!r};"
                                    f" known classes: {sorted(known)}. Map it in dataset.csv.label_map"
                                    " or list it in dataset.classes")
                file = Path(path) if Path(path).is_absolute() else table.parent / path
                if not file.is_file():
                    handle_unreadable(str(file), f"file not found (listed in {table.name}, row {line})",
                                      cfg.on_unreadable, skipped)
                    continue
                items.append((patient, label, str(file)))
    except FileNotFoundError as exc:
        raise DataError(f"{table}: CSV file not found") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{table}: not a readable UTF-8 CSV file ({exc})") from exc
    if not items:
        raise DataError(f"{table}: no readable image rows")
    check_one_class_per_patient(items)
    classes = order_classes({label for _, label, _ in items}, cfg.classes, str(table))
    return RecordSet(number_records(items), classes, skipped)


def _known_labels(cfg: DatasetConfig) -> set[str] | None:
    """Class names a mapped label may take: dataset.classes, else the label_map's values, else any."""
    if cfg.classes is not None:
        return set(cfg.classes)
    if cfg.csv.label_map:
        return set(cfg.csv.label_map.values())
    return None


def _check_header(table: Path, fieldnames: list[str] | None, cfg: DatasetConfig) -> None:
    """Every configured column must be in the header (row 1)."""
    if not fieldnames:
        raise DataError(f"{table}: the CSV file is empty (row 1 should be a header)")
    for key in ("path_column", "label_column", "patient_column"):
        column = getattr(cfg.csv, key)
        if column not in fieldnames:
            raise DataError(f"{table}, row 1 (header), column {column!r}: no such column; the header has"
                            f" {fieldnames}. Set dataset.csv.{key} to the right column name")


def _cell(table: Path, line: int, row: dict, column: str) -> str:
    """A non-empty cell, stripped."""
    value = (row.get(column) or "").strip()
    if not value:
        raise DataError(f"{table}, row {line}, column {column!r}: empty value")
    return value
