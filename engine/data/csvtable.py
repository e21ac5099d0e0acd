"""A metadata CSV with one row per image: path, patient and label columns (names and rules set in dataset.csv).

Paths are relative to `dataset.csv.image_root` (itself relative to the CSV file's folder; default that folder)
unless absolute. Rows go through the row filters (`where`, `where_not`), then the label layout and label_map
(engine/data/labels.py); a row a rule leaves out is recorded as skipped with its rule, never dropped silently.
One patient id under two classes is an error naming both files, never a silent reassignment.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from xaug.engine.data.labels import Skip, known_classes, row_class, row_filter
from xaug.engine.data.records import (
    RecordSet,
    check_one_class_per_patient,
    handle_unreadable,
    number_records,
    order_classes,
)
from xaug.store.errors import DataError
from xaug.engine.recipe.schema import CsvConfig, DatasetConfig


def load_csv(cfg: DatasetConfig) -> RecordSet:
    """Records of the rows of the CSV at `cfg.path` that the rules keep; bad rows raise DataError with file, row
    and column; skipped rows and missing files are listed in `skipped` as (source, '<rule>: <why> (<row>)')."""
    if cfg.path is None:
        raise DataError("dataset.path is not set: source 'csv' needs the metadata CSV file")
    table = Path(cfg.path)
    root = image_root(table, cfg.csv)
    known = known_classes(cfg)
    items: list[tuple[str, str, str]] = []
    skipped: list[tuple[str, str]] = []
    rows: dict[str, str] = {}  # source -> 'meta.csv, row 7'
    for line, row in csv_rows(table, cfg.csv):
        where = f"{table.name}, row {line}"
        label = row_filter(row, cfg.csv) or row_class(row, cfg, known, f"{table}, row {line}")
        if isinstance(label, Skip):  # a skipped row may lack any cell; its source is its file, if it names one
            named = (row.get(cfg.csv.path_column) or "").strip()
            skipped.append((str(image_path(root, named)) if named else where, label.reason(where)))
            continue
        file = image_path(root, _cell(table, line, row, cfg.csv.path_column))
        patient = _cell(table, line, row, cfg.csv.patient_column)
        if not file.is_file():
            handle_unreadable(str(file), f"file not found (listed in {where})", cfg.on_unreadable, skipped)
            continue
        items.append((patient, label, str(file)))
        rows[str(file)] = where
    if cfg.csv.on_mixed_patient == "skip":
        items = _without_mixed_patients(items, rows, skipped)
    if not items:
        raise DataError(f"{table}: no readable image rows ({len(skipped)} rows skipped; `xaug data inspect RECIPE`"
                        " lists them by rule)")
    check_one_class_per_patient(items)
    classes = order_classes({label for _, label, _ in items}, cfg.classes, str(table))
    return RecordSet(number_records(items), classes, skipped)


def image_path(root: Path, path: str) -> Path:
    """An image path from the table: absolute as it is, else below the image root."""
    return Path(path) if Path(path).is_absolute() else root / path


def _without_mixed_patients(items: list[tuple[str, str, str]], rows: dict[str, str],
                            skipped: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """The items of patients with one class; every image of a patient with several is added to `skipped`."""
    classes: dict[str, set[str]] = {}
    for patient, label, _ in items:
        classes.setdefault(patient, set()).add(label)
    kept = []
    for patient, label, source in items:
        if len(classes[patient]) == 1:
            kept.append((patient, label, source))
        else:  # the patient id is not written: it may be identifying
            detail = f"the patient has images of classes {', '.join(sorted(classes[patient]))}"
            skipped.append((source, Skip("on_mixed_patient", detail).reason(rows[source])))
    return kept


def image_root(table: Path, columns: CsvConfig) -> Path:
    """The folder image paths are relative to: dataset.csv.image_root against the CSV's folder, or that folder."""
    if columns.image_root is None:
        return table.parent
    root = Path(columns.image_root).expanduser()
    return root if root.is_absolute() else table.parent / root


def csv_rows(table: Path, columns: CsvConfig) -> Iterator[tuple[int, dict]]:
    """(line number, row) of every data row, after checking that the header has every configured column."""
    try:
        with open(table, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            check_header(table, reader.fieldnames, columns)
            for row in reader:
                yield reader.line_num, row
    except FileNotFoundError as exc:
        raise DataError(f"{table}: CSV file not found") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{table}: not a readable UTF-8 CSV file ({exc})") from exc


def missing_columns(fieldnames: list[str], columns: CsvConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """(recipe key path under dataset.csv, column) of each configured column that the header lacks."""
    wanted: list[tuple[tuple[str | int, ...], str]] = [(("path_column",), columns.path_column),
                                                       (("patient_column",), columns.patient_column)]
    if columns.findings_column is not None:
        wanted.append((("findings_column", "column"), columns.findings_column.column))
    elif columns.finding_columns is not None:
        wanted += [(("finding_columns", "columns", i), c) for i, c in enumerate(columns.finding_columns.columns)]
    else:
        wanted.append((("label_column",), columns.label_column))
    wanted += [((key, column), column) for key in ("where", "where_not") for column in getattr(columns, key)]
    return [(loc, column) for loc, column in wanted if column not in fieldnames]


def read_header(table: Path) -> list[str] | None:
    """The column names of a CSV file's header row, or None when the file is empty or unreadable."""
    try:
        with open(table, newline="", encoding="utf-8-sig") as fh:
            return csv.DictReader(fh).fieldnames
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def check_header(table: Path, fieldnames: list[str] | None, columns: CsvConfig) -> None:
    """Every configured column must be in the header (row 1)."""
    if not fieldnames:
        raise DataError(f"{table}: the CSV file is empty (row 1 should be a header)")
    for loc, column in missing_columns(fieldnames, columns):
        key = ".".join(str(part) for part in loc)
        raise DataError(f"{table}, row 1 (header), column {column!r}: no such column; the header has"
                        f" {fieldnames}. Set dataset.csv.{key} to the right column name")


def _cell(table: Path, line: int, row: dict, column: str) -> str:
    """A non-empty cell, stripped."""
    value = (row.get(column) or "").strip()
    if not value:
        raise DataError(f"{table}, row {line}, column {column!r}: empty value")
    return value
