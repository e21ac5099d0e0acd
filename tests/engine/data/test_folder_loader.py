"""The folder loader: classes from sub-folders, patients from a pattern, DICOM PatientID or the file itself."""

from __future__ import annotations

import shutil

import pytest

from conftest import write_png
from xaug.engine.data.folder import load_folder
from xaug.engine.errors import DataError
from xaug.engine.recipe.schema import DatasetConfig


def test_classes_patients_and_ids(png_folder):
    result = load_folder(DatasetConfig(source="folder", path=str(png_folder), patient_pattern=r"^(P\d+)_"))
    assert result.classes == ["bacterial", "healthy", "viral"]  # sorted folder names
    assert len(result.records) == 3 * (3 * 2 + 3 * 3)
    assert {r.patient_id for r in result.records if r.label == "viral"} == {f"P{p:03d}" for p in range(6)}
    # Ids are per-class numbers, never file names (which may carry patient ids).
    assert [r.image_id for r in result.records if r.label == "bacterial"][:2] == ["bacterial/00000", "bacterial/00001"]
    assert all("P0" not in r.image_id for r in result.records)
    assert "P000" not in repr(result.records[0])  # the raw patient id stays out of logs
    assert result.skipped == []


def test_class_order_from_config_and_unknown_folder(png_folder):
    cfg = DatasetConfig(source="folder", path=str(png_folder), classes=["healthy", "viral", "bacterial"],
                        patient_pattern=r"^(P\d+)_")
    assert load_folder(cfg).classes == ["healthy", "viral", "bacterial"]
    with pytest.raises(DataError, match=r"\['viral'\] are not in dataset.classes"):
        load_folder(cfg.model_copy(update={"classes": ["healthy", "bacterial"]}))


def test_without_patient_ids_the_loader_refuses_unless_told_one_patient_per_image(png_folder):
    with pytest.raises(DataError, match=r"bacterial/P020_0\.png: a PNG/JPEG file carries no patient id and"
                                        r" dataset\.patient_pattern is not set.*one_patient_per_image: true"):
        load_folder(DatasetConfig(source="folder", path=str(png_folder)))
    records = load_folder(DatasetConfig(source="folder", path=str(png_folder), one_patient_per_image=True)).records
    assert len({r.patient_id for r in records}) == len(records)


def test_dicom_without_patient_id_is_named(png_folder, rg1_uncompressed):
    import pydicom

    for path in png_folder.rglob("*.png"):
        path.unlink()
    (png_folder / "bacterial").rmdir()  # an empty class folder is an error of its own
    for name in ("healthy", "viral"):
        shutil.copy(rg1_uncompressed, png_folder / name / "ok.dcm")
        ds = pydicom.dcmread(rg1_uncompressed)
        ds.PatientID = ""
        ds.save_as(png_folder / name / "anonymous.dcm")
    with pytest.raises(DataError, match=r"healthy/anonymous\.dcm: this DICOM file has no PatientID"):
        load_folder(DatasetConfig(source="folder", path=str(png_folder)))


def test_same_patient_under_two_classes_names_both_files(png_folder):
    write_png(png_folder / "healthy" / "P001_9.png", 10)  # P001 is a viral patient
    cfg = DatasetConfig(source="folder", path=str(png_folder), patient_pattern=r"^(P\d+)_")
    with pytest.raises(DataError, match=r"healthy/P001_9\.png \(class 'healthy'\) and .*viral/P001_0\.png"
                                        r" \(class 'viral'\) have the same patient id"):
        load_folder(cfg)


def test_pattern_that_does_not_match_is_an_error(png_folder):
    write_png(png_folder / "healthy" / "scan.png", 10)
    cfg = DatasetConfig(source="folder", path=str(png_folder), patient_pattern=r"^(P\d+)_")
    with pytest.raises(DataError, match=r"scan\.png.*does not match"):
        load_folder(cfg)
    with pytest.raises(DataError, match="exactly one"):
        load_folder(DatasetConfig(source="folder", path=str(png_folder), patient_pattern=r"^P\d+_"))


def test_dicom_patient_id_groups_images(png_folder, rg1_uncompressed):
    for name in ("a.dcm", "b.dcm"):
        shutil.copy(rg1_uncompressed, png_folder / "healthy" / name)
    records = load_folder(DatasetConfig(source="folder", path=str(png_folder), one_patient_per_image=True)).records
    assert [(r.label, r.patient_id) for r in records if r.source.endswith(".dcm")] == [("healthy", "9RG1")] * 2


def test_unreadable_dicom_header_is_an_error_or_skipped(png_folder):
    bad = png_folder / "viral" / "bad.dcm"
    bad.write_bytes(b"not a DICOM file at all")
    with pytest.raises(DataError, match=r"bad\.dcm: cannot read the DICOM header"):
        load_folder(DatasetConfig(source="folder", path=str(png_folder), one_patient_per_image=True))
    result = load_folder(DatasetConfig(source="folder", path=str(png_folder), on_unreadable="skip",
                                       one_patient_per_image=True))
    assert result.skipped[0][0] == str(bad) and "DICOM header" in result.skipped[0][1]
    assert len(result.records) == 45


def test_not_a_folder(tmp_path):
    with pytest.raises(DataError, match="no class sub-folders"):
        load_folder(DatasetConfig(source="folder", path=str(tmp_path)))


def test_a_class_whose_every_image_was_skipped_is_an_error_that_says_why(png_folder):
    for path in (png_folder / "viral").glob("*.png"):
        path.rename(path.with_name(path.name.replace("P", "X")))  # patient_pattern no longer finds an id
    cfg = DatasetConfig(source="folder", path=str(png_folder), patient_pattern=r"^(P\d+)_", on_unreadable="skip")
    with pytest.raises(DataError, match=rf"^{png_folder / 'viral'}: all 15 image\(s\) of class 'viral' were skipped "
                                        r".*X\d+_\d\.png: dataset\.patient_pattern .* does not match the file name"):
        load_folder(cfg)
