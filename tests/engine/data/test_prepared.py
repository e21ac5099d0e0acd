"""prepare_dataset / load_prepared: decode once, cache, folds, no raw patient ids on disk."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from conftest import write_png
from xaug.engine.data.prepared import load_prepared, prepare_dataset
from xaug.engine.data.sources import image_sources
from xaug.store.errors import DataError
from xaug.engine.recipe.schema import DatasetConfig, PhantomConfig, SplitsConfig

PHANTOM = DatasetConfig(source="phantom", image_size=64, phantom=PhantomConfig(scale=0.25))
SMALL = DatasetConfig(source="phantom", image_size=32, phantom=PhantomConfig(scale=0.01, native_size=64))


def test_phantom_round_trip_and_reuse(tmp_path):
    calls = []
    cpu = time.process_time()
    report = prepare_dataset(PHANTOM, SplitsConfig(folds=5), tmp_path, progress=lambda d, t: calls.append((d, t)))
    cpu = time.process_time() - cpu
    assert cpu < 5.0, f"preparing the quickstart phantom took {cpu:.1f} s of CPU"
    assert report.n_images == 270 and report.folds == 5 and not report.reused
    assert report.class_counts == {"healthy": 168, "bacterial": 25, "viral": 18, "fungal": 31, "covid19": 28}
    assert calls[-1] == (270, 270) and len(calls) >= 10

    data = load_prepared(tmp_path)
    assert isinstance(data.images, np.memmap) and data.images.shape == (270, 64, 64)
    assert data.images.dtype == np.uint8 and data.classes == ["healthy", "bacterial", "viral", "fungal", "covid19"]
    sizes = 0
    for k in range(5):
        for name in ("train", "val", "test"):
            images, labels = data.split(k, name)
            assert images.shape[1:] == (64, 64) and len(images) == len(labels) > 0
            sizes += len(labels)
        test_images, _ = data.split(k, "test")
        assert np.array_equal(test_images[0], data.images[data.folds[k].test[0]])
    assert sizes == 5 * 270
    assert data.train_images(0).images.shape[0] == len(data.folds[0].train)

    mtime = (tmp_path / "images.npy").stat().st_mtime_ns
    again = prepare_dataset(PHANTOM, SplitsConfig(folds=5), tmp_path, progress=lambda d, t: calls.append("again"))
    assert again.reused and again.n_images == 270 and "again" not in calls
    assert (tmp_path / "images.npy").stat().st_mtime_ns == mtime


def test_changed_config_prepares_again(tmp_path):
    assert not prepare_dataset(SMALL, SplitsConfig(folds=2), tmp_path).reused
    assert prepare_dataset(SMALL, SplitsConfig(folds=2), tmp_path).reused
    changed = prepare_dataset(SMALL, SplitsConfig(folds=3), tmp_path)
    assert not changed.reused and len(load_prepared(tmp_path).folds) == 3


def test_index_holds_pseudonyms_only(tmp_path):
    prepare_dataset(SMALL, SplitsConfig(folds=2), tmp_path, pseudonymise=lambda p: "x" + p[::-1])
    text = (tmp_path / "index.json").read_text()
    assert "healthy-0000" not in text and "x0000-yhtlaeh" in text
    index = json.loads(text)
    assert set(index) >= {"classes", "labels", "image_ids", "patients", "folds"}
    # A different pseudonymiser (another store's salt) does not reuse the old pseudonyms.
    assert not prepare_dataset(SMALL, SplitsConfig(folds=2), tmp_path, pseudonymise=lambda p: "y" + p).reused
    assert load_prepared(tmp_path).patients[0].startswith("y")


def test_folder_with_corrupt_files_letterboxed(tmp_path, rg1_uncompressed):
    root = tmp_path / "data"
    for c, name in enumerate(["a", "b"]):
        for p in range(4):
            write_png(root / name / f"p{c}{p}.png", 100 + 50 * c, size=(60, 30), seed=p)
    shutil.copy(rg1_uncompressed, root / "a" / "chest.dcm")
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    dicm = root / "b" / "broken.dcm"
    ds = pydicom.dcmread(rg1_uncompressed)
    ds.PixelData = ds.PixelData[:1000]  # the header reads, the pixels are cut short
    ds.PatientID = "another"  # not chest.dcm's patient, who is in class a
    ds.save_as(dicm)
    cfg = DatasetConfig(source="folder", path=str(root), image_size=32, on_unreadable="skip",
                        one_patient_per_image=True)
    report = prepare_dataset(cfg, SplitsConfig(folds=2), tmp_path / "out")
    # Stored paths are private: relative, the file name a keyed hash (no patient_pattern says where the id is).
    assert sorted(Path(s).suffix for s, _ in report.skipped) == [".dcm", ".png"]
    assert all(re.fullmatch(r"b/file-[0-9a-f]{16}\.(png|dcm)", s) for s, _ in report.skipped)
    assert not any(str(root) in s + reason or "broken" in s + reason for s, reason in report.skipped)
    assert report.n_images == 9
    data = load_prepared(tmp_path / "out")
    image = data.images[data.image_ids.index("a/00000")]  # chest.dcm sorts first in class a
    assert image_sources(cfg)["a/00000"].endswith("chest.dcm")
    assert image.mean() > 50  # a radiograph, letterboxed
    png = data.images[data.image_ids.index("a/00001")]  # 60 x 30: padded above and below with black
    assert png[:7].max() == 0 and png[-7:].max() == 0 and png[16].min() >= 100
    with pytest.raises(DataError, match=r"^b/file-[0-9a-f]{16}\.(png|dcm): ") as failed:
        prepare_dataset(cfg.model_copy(update={"on_unreadable": "error"}), SplitsConfig(folds=2), tmp_path / "out2")
    assert str(root) not in str(failed.value) and "broken" not in str(failed.value)


def test_load_prepared_needs_a_prepared_folder(tmp_path):
    with pytest.raises(DataError, match="run prepare_data first"):
        load_prepared(tmp_path)


def test_a_dataset_file_that_cannot_be_opened_is_named_privately(tmp_path, monkeypatch):
    import xaug.engine.data.prepared as prepared

    root = tmp_path / "data"
    for c, name in enumerate(["a", "b"]):
        for p in range(3):
            write_png(root / name / f"PAT{c}{p}_0.png", 90, seed=p)
    cfg = DatasetConfig(source="folder", path=str(root), image_size=16, patient_pattern=r"^(PAT\d+)_")

    def decoder(_cfg):
        def decode(record):  # as open() fails on a file this user may not read (root reads every file)
            raise PermissionError(13, "Permission denied", record.source)
        return decode

    monkeypatch.setattr(prepared, "record_decoder", decoder)
    with pytest.raises(DataError, match=r"^a/PAT00-pseudonym_0\.png: cannot read it \(Permission denied\)$"):
        prepare_dataset(cfg, SplitsConfig(folds=2), tmp_path / "out", pseudonymise=lambda pid: f"{pid}-pseudonym")


def test_a_csv_file_skipped_is_stored_without_its_folders(tmp_path):
    rows = [(f"train/patient{p:05d}/view1.png", "ab"[p % 2], f"patient{p:05d}") for p in range(8)]
    for n, (path, _, _) in enumerate(rows[:-1]):
        write_png(tmp_path / path, 80, seed=n)  # the last row's file is missing
    table = tmp_path / "meta.csv"
    table.write_text("path,label,patient_id\n" + "".join(f"{p},{label},{s}\n" for p, label, s in rows))
    cfg = DatasetConfig(source="csv", path=str(table), image_size=16, on_unreadable="skip")
    report = prepare_dataset(cfg, SplitsConfig(folds=2), tmp_path / "out", pseudonymise=lambda text: "h" * 16)
    assert report.skipped == [("file-hhhhhhhhhhhhhhhh.png", "file not found (listed in meta.csv, row 9)")]
    assert "patient0000" not in (tmp_path / "out" / "index.json").read_text()


def test_private_paths_of_a_csv_with_an_image_root():
    from xaug.engine.data.pseudonyms import PrivatePaths
    from xaug.engine.recipe.schema import CsvConfig

    cfg = DatasetConfig(source="csv", path="/site/meta.csv", csv=CsvConfig(image_root="images"))
    private = PrivatePaths(cfg, lambda text: f"<{text}>")
    assert private.name("/site/images/p1/a.png") == "file-<p1/a.png>.png"
    assert private.name("/elsewhere/p1/a.png") == "file-</elsewhere/p1/a.png>.png"  # outside: hashed whole
    assert private.name("meta.csv, row 7") == "meta.csv, row 7"  # a row without a file names no one
    assert private.scrub("/site/images/p2/b.png: not found") == "file-<p2/b.png>.png: not found"
