"""From one row of a metadata CSV to its class: row filters, the three label layouts, and what is skipped.

A row is either kept with a class name, skipped by a named rule (counted, reported by `xaug data inspect` and
recorded in the store), or stops loading with a DataError naming the file, row and column. Everything that turns
CSV labels into class names happens in `row_class`, so a check on class names has one place to go.

Layouts (dataset.csv):
- `label_column`: one label per row;
- `findings_column`: one cell lists all findings, separated (NIH ChestX-ray14: `Effusion|Pneumonia`);
- `finding_columns`: one column per finding with 1 / 0 / -1 (uncertain) / blank (not mentioned) (CheXpert).
An image with several findings is skipped, or given the first finding of `priority` it has (multiple_findings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from xaug.store.errors import DataError
from xaug.engine.recipe.schema import CsvConfig, DatasetConfig

SKIP_RULES = ("where", "where_not", "on_missing_label", "on_other_label", "multiple_findings", "uncertain", "blank",
              "on_unreadable", "on_mixed_patient")
"""Rules that can skip a row or a file, in the order `xaug data inspect` lists them."""

_POSITIVE, _NEGATIVE, _UNCERTAIN = ("1", "1.0"), ("0", "0.0"), ("-1", "-1.0")


@dataclass(frozen=True)
class Skip:
    """A row left out by a rule of the recipe (not an error): which rule, and why, in words."""

    rule: str
    detail: str

    def reason(self, where: str) -> str:
        """The reason recorded with the skipped row: `<rule>: <detail> (<where>)`; see `skip_rule`."""
        return f"{self.rule}: {self.detail} ({where})"


def skip_rule(reason: str) -> str:
    """The rule of a recorded skip reason; a file that could not be read is 'on_unreadable'."""
    head = reason.split(":", 1)[0]
    return head if head in SKIP_RULES else "on_unreadable"


def row_filter(row: Mapping[str, str | None], csv: CsvConfig) -> Skip | None:
    """The `where` / `where_not` rule that leaves this row out, or None when the row is kept. A filter on the
    patient column does not repeat the patient id in its reason (reasons are stored)."""
    for column, values in csv.where.items():
        value = _value(row, column)
        if value not in values:
            shown = "not listed" if column == csv.patient_column else f"{value!r}, not one of {values}"
            return Skip("where", f"{column} is {shown}")
    for column, values in csv.where_not.items():
        value = _value(row, column)
        if value in values:
            return Skip("where_not", f"{column} is {'listed' if column == csv.patient_column else repr(value)}")
    return None


def label_columns(csv: CsvConfig) -> list[str]:
    """The columns the label layout reads."""
    if csv.findings_column is not None:
        return [csv.findings_column.column]
    if csv.finding_columns is not None:
        return list(csv.finding_columns.columns)
    return [csv.label_column]


def known_classes(cfg: DatasetConfig) -> set[str] | None:
    """Class names a mapped label may take: dataset.classes, else the label_map's values, else any (None)."""
    if cfg.classes is not None:
        return set(cfg.classes)
    if cfg.csv.label_map:
        return set(cfg.csv.label_map.values())
    return None


def row_class(row: Mapping[str, str | None], cfg: DatasetConfig, known: set[str] | None, where: str) -> str | Skip:
    """The class of one (filtered) row, or the Skip that leaves it out; DataError when the recipe says `error`.

    `known` is `known_classes(cfg)`; `where` names the row in messages ('meta.csv, row 7').
    """
    csv = cfg.csv
    findings = _findings(row, csv, where)
    if isinstance(findings, Skip):
        return findings
    if not findings:
        column = ", ".join(label_columns(csv))
        if csv.on_missing_label == "skip":
            return Skip("on_missing_label", f"no label in {column}")
        raise DataError(f"{where}, column {column!r}: empty value (no label); set dataset.csv.on_missing_label: skip"
                        " to skip and count such rows")
    raw = _chosen_finding(findings, csv, where)
    if isinstance(raw, Skip):
        return raw
    label = csv.label_map.get(raw, raw)
    if known is not None and label not in known:
        if csv.on_other_label == "skip":
            return Skip("on_other_label", f"label {raw!r} is not a class")
        raise DataError(f"{where}, column {', '.join(label_columns(csv))!r}: unknown label {raw!r};"
                        f" known classes: {sorted(known)}. Map it in dataset.csv.label_map, list it in"
                        " dataset.classes, or set dataset.csv.on_other_label: skip")
    return label


def _findings(row: Mapping[str, str | None], csv: CsvConfig, where: str) -> list[str] | Skip:
    """The raw findings of a row in its layout (empty when it has none)."""
    if csv.findings_column is not None:
        spec = csv.findings_column
        return [part.strip() for part in _value(row, spec.column).split(spec.separator) if part.strip()]
    if csv.finding_columns is None:
        value = _value(row, csv.label_column)
        return [value] if value else []
    spec = csv.finding_columns
    positive = []
    for column in spec.columns:
        value = _value(row, column)
        if value in _POSITIVE:
            positive.append(column)
        elif value in _UNCERTAIN:
            if spec.uncertain == "skip":
                return Skip("uncertain", f"{column} is uncertain (-1)")
            if spec.uncertain == "positive":
                positive.append(column)
        elif value == "":
            if spec.blank == "skip":
                return Skip("blank", f"{column} is blank")
        elif value not in _NEGATIVE:
            raise DataError(f"{where}, column {column!r}: value {value!r} is not 1, 0, -1 or blank"
                            " (dataset.csv.finding_columns)")
    return positive


def _chosen_finding(findings: list[str], csv: CsvConfig, where: str) -> str | Skip:
    """The one finding that gives the class, by dataset.csv.multiple_findings."""
    if csv.multiple_findings == "priority":
        chosen = next((f for f in csv.priority if f in findings), None)
        if chosen is None:
            if csv.on_other_label == "skip":
                return Skip("on_other_label", f"findings {'|'.join(findings)}, none of them in priority")
            raise DataError(f"{where}: findings {'|'.join(findings)} include none of dataset.csv.priority"
                            f" {csv.priority}; add one, or set dataset.csv.on_other_label: skip")
        return chosen
    if len(findings) > 1:
        return Skip("multiple_findings", f"{len(findings)} findings ({'|'.join(findings)})")
    return findings[0]


def _value(row: Mapping[str, str | None], column: str) -> str:
    return (row.get(column) or "").strip()
