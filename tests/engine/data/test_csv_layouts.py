"""CSV tables as public datasets ship them: image_root, row filters, skipped-row counts and the three label layouts
(one label column, NIH's `Finding Labels` with `|`, CheXpert's one column per finding with 1/0/-1/blank)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from conftest import write_png
from xaug.engine.data.csvtable import load_csv
from xaug.engine.data.labels import skip_rule
from xaug.store.errors import DataError
from xaug.engine.recipe.schema import CsvConfig, DatasetConfig, FindingColumns, FindingsColumn


def write_table(folder: Path, header: list[str], rows: list[dict], image_dir: str = "images") -> Path:
    """A metadata CSV in `folder` naming files below `folder/image_dir` (written, except names with 'missing')."""
    for i, row in enumerate(rows):
        if row[header[0]] and "missing" not in row[header[0]]:
            write_png(folder / image_dir / row[header[0]], 40 + i, seed=i)
    table = folder / "metadata.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return table


def rules(skipped) -> Counter:
    return Counter(skip_rule(reason) for _, reason in skipped)


# --- one label column (a COVID collection: labels missing in some rows, mixed views and modalities) -------------

COVID_HEADER = ["filename", "patientid", "finding", "view", "modality"]


def covid_rows() -> list[dict]:
    rows = []
    for i in range(12):
        rows.append({"filename": f"c{i:02d}.png", "patientid": f"p{i // 2}", "finding": ["COVID-19", "Normal"][i // 6],
                     "view": "PA", "modality": "X-ray"})
    rows[3]["finding"] = ""  # no label
    rows[4]["view"] = "AP"
    rows[5]["modality"] = "CT"
    rows[7]["view"] = "L"
    return rows


def covid_cfg(table: Path, **csv) -> DatasetConfig:
    columns = dict(path_column="filename", patient_column="patientid", label_column="finding", image_root="images",
                   label_map={"COVID-19": "covid19", "Normal": "healthy"})
    return DatasetConfig(source="csv", path=str(table), csv=CsvConfig(**(columns | csv)))


def test_image_root_filters_and_skipped_label_rows_are_counted(tmp_path):
    table = write_table(tmp_path, COVID_HEADER, covid_rows())
    cfg = covid_cfg(table, where={"view": ["PA", "AP"], "modality": ["X-ray"]}, where_not={"view": ["AP"]},
                    on_missing_label="skip")
    result = load_csv(cfg)
    assert rules(result.skipped) == {"where": 2, "where_not": 1, "on_missing_label": 1}  # rows 6+8, 5, 4
    assert len(result.records) == 12 - 4
    assert {Path(r.source).parent for r in result.records} == {tmp_path / "images"}
    reasons = dict(result.skipped)
    assert reasons[str(tmp_path / "images" / "c03.png")] == \
        "on_missing_label: no label in finding (metadata.csv, row 5)"
    assert reasons[str(tmp_path / "images" / "c07.png")].startswith("where: view is 'L', not one of ['PA', 'AP']")
    assert Counter(r.label for r in result.records) == {"covid19": 3, "healthy": 5}


def test_a_row_a_filter_skips_needs_no_path(tmp_path):
    rows = covid_rows()
    rows[7]["filename"] = ""  # a lateral view without a file: filtered out before its cells are read
    result = load_csv(covid_cfg(write_table(tmp_path, COVID_HEADER, rows), where={"view": ["PA", "AP"]},
                                on_missing_label="skip"))
    assert ("metadata.csv, row 9", "where: view is 'L', not one of ['PA', 'AP'] (metadata.csv, row 9)") in \
        result.skipped
    rows[8]["filename"] = ""  # a kept row without a path is an error
    with pytest.raises(DataError, match=r"row 10, column 'filename': empty value"):
        load_csv(covid_cfg(write_table(tmp_path, COVID_HEADER, rows), where={"view": ["PA", "AP"]},
                           on_missing_label="skip"))


def test_a_filter_on_the_patient_column_keeps_the_ids_out_of_the_reasons(tmp_path):
    table = write_table(tmp_path, COVID_HEADER, covid_rows())
    result = load_csv(covid_cfg(table, where_not={"patientid": ["p0"]},
                                where={"patientid": ["p0", "p1", "p2", "p3", "p4"]}, on_missing_label="skip"))
    reasons = [reason for _, reason in result.skipped]
    assert rules(result.skipped) == {"where": 2, "where_not": 2, "on_missing_label": 1}
    assert "where_not: patientid is listed (metadata.csv, row 2)" in reasons
    assert "where: patientid is not listed (metadata.csv, row 12)" in reasons
    assert not any("p0" in r or "p5" in r for r in reasons)


def test_missing_label_is_an_error_by_default_naming_file_row_and_column(tmp_path):
    table = write_table(tmp_path, COVID_HEADER, covid_rows())
    with pytest.raises(DataError, match=r"metadata\.csv, row 5, column 'finding': empty value .*on_missing_label"):
        load_csv(covid_cfg(table))


def test_without_image_root_paths_are_relative_to_the_table(tmp_path):
    table = write_table(tmp_path, COVID_HEADER, covid_rows())
    cfg = covid_cfg(table, image_root=None, on_missing_label="skip")
    with pytest.raises(DataError, match=r"c00\.png: file not found \(listed in metadata\.csv, row 2\)"):
        load_csv(cfg)
    absolute = covid_cfg(table, image_root=str(tmp_path / "images"), on_missing_label="skip")
    assert len(load_csv(absolute).records) == 11


def test_missing_files_follow_on_unreadable_and_are_counted_apart(tmp_path):
    rows = covid_rows()
    rows[0]["filename"] = "missing.png"
    table = write_table(tmp_path, COVID_HEADER, rows)
    cfg = covid_cfg(table, on_missing_label="skip").model_copy(update={"on_unreadable": "skip"})
    assert rules(load_csv(cfg).skipped) == {"on_missing_label": 1, "on_unreadable": 1}


def test_a_filter_column_missing_from_the_header_names_the_recipe_key(tmp_path):
    table = write_table(tmp_path, COVID_HEADER, covid_rows())
    with pytest.raises(DataError, match=r"row 1 \(header\), column 'View Position': no such column.*"
                                        r"dataset\.csv\.where\.View Position"):
        load_csv(covid_cfg(table, where={"View Position": ["PA"]}))


# --- NIH ChestX-ray14: one column lists the findings, 'A|B' ------------------------------------------------------

NIH_HEADER = ["Image Index", "Finding Labels", "Patient ID", "View Position"]
NIH_FINDINGS = ["No Finding", "Pneumonia", "Pneumonia|Effusion", "Effusion", "No Finding", "Infiltration|Pneumonia",
                "Mass", "No Finding", "Pneumonia", "Effusion|Mass"]


def nih_rows() -> list[dict]:
    return [{"Image Index": f"{i:08d}_000.png", "Finding Labels": f, "Patient ID": str(i),
             "View Position": "AP" if i == 4 else "PA"} for i, f in enumerate(NIH_FINDINGS)]


def nih_cfg(table: Path, **csv) -> DatasetConfig:
    columns = dict(path_column="Image Index", patient_column="Patient ID", image_root="images",
                   findings_column=FindingsColumn(column="Finding Labels"), on_other_label="skip",
                   label_map={"No Finding": "healthy", "Pneumonia": "pneumonia"}, where={"View Position": ["PA"]})
    return DatasetConfig(source="csv", path=str(table), csv=CsvConfig(**(columns | csv)))


def test_nih_single_finding_only(tmp_path):
    result = load_csv(nih_cfg(write_table(tmp_path, NIH_HEADER, nih_rows())))
    assert Counter(r.label for r in result.records) == {"healthy": 2, "pneumonia": 2}  # rows 0, 7 and 1, 8
    assert rules(result.skipped) == {"where": 1, "multiple_findings": 3, "on_other_label": 2}
    reasons = [reason for _, reason in result.skipped]
    assert "multiple_findings: 2 findings (Pneumonia|Effusion) (metadata.csv, row 4)" in reasons
    assert "on_other_label: label 'Effusion' is not a class (metadata.csv, row 5)" in reasons


def test_nih_priority_order(tmp_path):
    table = write_table(tmp_path, NIH_HEADER, nih_rows())
    result = load_csv(nih_cfg(table, multiple_findings="priority", priority=["Pneumonia", "No Finding"]))
    assert Counter(r.label for r in result.records) == {"healthy": 2, "pneumonia": 4}  # + rows 2 and 5
    assert rules(result.skipped) == {"where": 1, "on_other_label": 3}  # Effusion, Mass, Effusion|Mass


def test_nih_other_findings_are_an_error_unless_skipped(tmp_path):
    table = write_table(tmp_path, NIH_HEADER, nih_rows())
    with pytest.raises(DataError, match=r"row 5, column 'Finding Labels': unknown label 'Effusion'.*on_other_label"):
        load_csv(nih_cfg(table, on_other_label="error"))
    with pytest.raises(DataError, match=r"row 2: findings No Finding include none of dataset\.csv\.priority"
                                        r" \['Pneumonia'\]; add one, or set dataset\.csv\.on_other_label: skip"):
        load_csv(nih_cfg(table, on_other_label="error", multiple_findings="priority", priority=["Pneumonia"]))


def test_nih_follow_ups_of_two_classes_are_an_error_or_skipped_as_a_patient(tmp_path):
    rows = nih_rows()
    rows[8]["Patient ID"] = rows[7]["Patient ID"]  # one patient: 'No Finding' at row 9, 'Pneumonia' at row 10
    table = write_table(tmp_path, NIH_HEADER, rows)
    with pytest.raises(DataError, match=r"00000007_000\.png \(class 'healthy'\) and .*00000008_000\.png \(class"
                                        r" 'pneumonia'\) have the same patient id.*on_mixed_patient: skip"):
        load_csv(nih_cfg(table))
    result = load_csv(nih_cfg(table, on_mixed_patient="skip"))
    assert Counter(r.label for r in result.records) == {"healthy": 1, "pneumonia": 1}
    mixed = [(Path(s).name, r) for s, r in result.skipped if skip_rule(r) == "on_mixed_patient"]
    assert mixed == [("00000007_000.png", "on_mixed_patient: the patient has images of classes healthy, pneumonia"
                                          " (metadata.csv, row 9)"),
                     ("00000008_000.png", "on_mixed_patient: the patient has images of classes healthy, pneumonia"
                                          " (metadata.csv, row 10)")]


# --- CheXpert: one column per finding, 1 / 0 / -1 / blank --------------------------------------------------------

CHEX_HEADER = ["Path", "Patient", "Frontal/Lateral", "No Finding", "Pneumonia", "Edema"]
CHEX_VALUES = [("1.0", "", ""), ("", "1.0", "0.0"), ("", "-1.0", ""), ("", "1.0", "1.0"), ("", "0.0", "-1.0"),
               ("", "", ""), ("1.0", "", ""), ("", "1.0", "")]


def chexpert_rows() -> list[dict]:
    return [{"Path": f"patient{i}/view1_frontal.jpg".replace(".jpg", ".png"), "Patient": f"patient{i}",
             "Frontal/Lateral": "Frontal", "No Finding": v[0], "Pneumonia": v[1], "Edema": v[2]}
            for i, v in enumerate(CHEX_VALUES)]


def chexpert_cfg(table: Path, **finding) -> DatasetConfig:
    columns = FindingColumns(columns=["No Finding", "Pneumonia", "Edema"], **finding)
    return DatasetConfig(source="csv", path=str(table), csv=CsvConfig(
        path_column="Path", patient_column="Patient", image_root="images", finding_columns=columns,
        on_missing_label="skip", label_map={"No Finding": "healthy", "Pneumonia": "pneumonia", "Edema": "edema"}))


def test_chexpert_uncertain_skipped_blank_negative(tmp_path):
    result = load_csv(chexpert_cfg(write_table(tmp_path, CHEX_HEADER, chexpert_rows())))
    assert Counter(r.label for r in result.records) == {"healthy": 2, "pneumonia": 2}  # rows 0, 6 and 1, 7
    assert rules(result.skipped) == {"uncertain": 2, "multiple_findings": 1, "on_missing_label": 1}
    assert "uncertain: Pneumonia is uncertain (-1) (metadata.csv, row 4)" in [r for _, r in result.skipped]


def test_chexpert_uncertain_as_positive_or_negative(tmp_path):
    table = write_table(tmp_path, CHEX_HEADER, chexpert_rows())
    ones = load_csv(chexpert_cfg(table, uncertain="positive"))
    assert Counter(r.label for r in ones.records) == {"healthy": 2, "pneumonia": 3, "edema": 1}  # rows 2 and 4
    zeros = load_csv(chexpert_cfg(table, uncertain="negative"))
    assert Counter(r.label for r in zeros.records) == {"healthy": 2, "pneumonia": 2}
    assert rules(zeros.skipped) == {"on_missing_label": 3, "multiple_findings": 1}  # rows 2, 4 and 5 have none


def test_chexpert_blank_skip_and_a_bad_value(tmp_path):
    rows = chexpert_rows()
    table = write_table(tmp_path, CHEX_HEADER, rows)
    with pytest.raises(DataError, match=r"no readable image rows \(8 rows skipped"):
        load_csv(chexpert_cfg(table, blank="skip"))  # every row leaves some finding blank
    rows[1]["Edema"] = "maybe"
    table = write_table(tmp_path, CHEX_HEADER, rows)
    with pytest.raises(DataError, match=r"row 3, column 'Edema': value 'maybe' is not 1, 0, -1 or blank"):
        load_csv(chexpert_cfg(table))


def test_filter_values_written_as_yaml_numbers_compare_as_cell_text():
    assert CsvConfig(where={"Follow-up #": [0, 1.0, "2"]}).where == {"Follow-up #": ["0", "1.0", "2"]}
    assert CsvConfig(where_not={"Age": [7]}).where_not == {"Age": ["7"]}


def test_layouts_are_exclusive_and_priority_needs_a_list():
    with pytest.raises(ValueError, match="not both"):
        CsvConfig(findings_column=FindingsColumn(column="a"), finding_columns=FindingColumns(columns=["b", "c"]))
    with pytest.raises(ValueError, match="needs the priority list"):
        CsvConfig(multiple_findings="priority")
