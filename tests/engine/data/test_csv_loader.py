"""The CSV loader: relative paths, label_map, and errors that name the file, row and column."""

from __future__ import annotations

import pytest

from conftest import write_png
from xaug.engine.data.csvtable import load_csv
from xaug.store.errors import DataError
from xaug.engine.recipe.schema import CsvConfig, DatasetConfig


def _table(tmp_path, rows, header="file,finding,subject"):
    for path, _, _ in rows:
        write_png(tmp_path / path, 50)
    table = tmp_path / "meta.csv"
    table.write_text(header + "\n" + "".join(f"{p},{label},{s}\n" for p, label, s in rows))
    return table


def _cfg(table, **kw):
    csv = CsvConfig(path_column="file", label_column="finding", patient_column="subject", **kw)
    return DatasetConfig(source="csv", path=str(table), csv=csv)


ROWS = [("img/a.png", "NORMAL", "s1"), ("img/b.png", "PNEUMONIA_VIRAL", "s4"), ("img/c.png", "NORMAL", "s1"),
        ("img/d.png", "PNEUMONIA_BACT", "s3")]
MAP = {"NORMAL": "healthy", "PNEUMONIA_VIRAL": "viral", "PNEUMONIA_BACT": "bacterial"}


def test_label_map_relative_paths_and_patients(tmp_path):
    result = load_csv(_cfg(_table(tmp_path, ROWS), label_map=MAP))
    assert result.classes == ["bacterial", "healthy", "viral"]
    by_source = {r.source: r for r in result.records}
    assert by_source[str(tmp_path / "img" / "b.png")].label == "viral"
    assert by_source[str(tmp_path / "img" / "b.png")].patient_id == "s4"
    assert by_source[str(tmp_path / "img" / "c.png")].patient_id == "s1"
    assert sorted(r.image_id for r in result.records) == ["bacterial/00000", "healthy/00000", "healthy/00001",
                                                          "viral/00000"]


def test_unknown_label_names_file_row_and_column(tmp_path):
    rows = ROWS + [("img/e.png", "PNEUMONIA_FUNGAL", "s4")]
    with pytest.raises(DataError, match=r"meta\.csv, row 6, column 'finding': unknown label 'PNEUMONIA_FUNGAL'"):
        load_csv(_cfg(_table(tmp_path, rows), label_map=MAP))


def test_missing_column_names_file_and_column(tmp_path):
    table = _table(tmp_path, ROWS, header="file,finding,patient")
    with pytest.raises(DataError, match=r"meta\.csv, row 1 \(header\), column 'subject': no such column"):
        load_csv(_cfg(table))


def test_empty_cell_and_missing_file(tmp_path):
    table = _table(tmp_path, ROWS)
    table.write_text(table.read_text() + "img/missing.png,NORMAL,s9\n")
    with pytest.raises(DataError, match=r"missing\.png: file not found \(listed in meta\.csv, row 6\)"):
        load_csv(_cfg(table, label_map=MAP))
    skipping = DatasetConfig(source="csv", path=str(table), on_unreadable="skip", csv=_cfg(table, label_map=MAP).csv)
    assert [s for s, _ in load_csv(skipping).skipped] == [str(tmp_path / "img" / "missing.png")]
    table.write_text(table.read_text() + "img/a.png,,s9\n")
    with pytest.raises(DataError, match=r"row 7, column 'finding': empty value"):
        load_csv(skipping)


def test_one_patient_under_two_classes_names_both_files(tmp_path):
    rows = ROWS + [("img/e.png", "PNEUMONIA_BACT", "s1")]  # s1 is already healthy (a.png, c.png)
    with pytest.raises(DataError, match=r"img/a\.png \(class 'healthy'\) and .*img/e\.png \(class 'bacterial'\)"
                                        r" have the same patient id") as info:
        load_csv(_cfg(_table(tmp_path, rows), label_map=MAP))
    assert "s1" not in str(info.value).replace(str(tmp_path), "")  # the patient id itself is not printed
