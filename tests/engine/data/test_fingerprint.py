"""Dataset and weights fingerprints: relative paths + sizes + content, cached by file stat, stable under a move."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from xaug.engine.data.fingerprint import (HashCache, InputFingerprints, dataset_fingerprint, file_digest,
                                          fingerprint_inputs, path_fingerprint)
from xaug.engine.errors import DataError
from xaug.engine.recipe import parse_recipe
from xaug.engine.recipe.schema import DatasetConfig


def write_png(path: Path, value: int, seed: int = 0) -> None:
    """A small grey PNG whose pixels depend on value and seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).integers(0, 20, size=(30, 40))
    Image.fromarray(np.clip(value + noise, 0, 255).astype(np.uint8)).save(path)


FOLDER = DatasetConfig(source="folder", path="x")
CSV = DatasetConfig(source="csv", path="x")


def test_moved_folder_has_the_same_fingerprint_and_is_not_read_again(png_folder, tmp_path):
    cache = HashCache(tmp_path / "hashes.json")
    before = dataset_fingerprint(FOLDER, png_folder, cache)
    files = sum(1 for p in png_folder.rglob("*.png"))
    assert cache.hashed == files
    cache.save()
    moved = png_folder.rename(tmp_path / "elsewhere")
    again = HashCache(tmp_path / "hashes.json")  # a fresh process: the cache comes from disk
    assert dataset_fingerprint(FOLDER, moved, again) == before
    assert again.hashed == 0


def test_one_edited_image_changes_the_fingerprint_and_is_the_only_file_read(png_folder, tmp_path):
    cache = HashCache(tmp_path / "hashes.json")
    before = dataset_fingerprint(FOLDER, png_folder, cache)
    edited = sorted((png_folder / "viral").glob("*.png"))[0]
    write_png(edited, 200, seed=99)
    cache.hashed = 0
    assert dataset_fingerprint(FOLDER, png_folder, cache) != before
    assert cache.hashed == 1


def test_renaming_an_image_or_adding_a_hidden_file(png_folder, tmp_path):
    cache = HashCache(tmp_path / "hashes.json")
    before = dataset_fingerprint(FOLDER, png_folder, cache)
    (png_folder / "viral" / ".DS_Store").write_bytes(b"finder")  # not read by the folder loader
    assert dataset_fingerprint(FOLDER, png_folder, cache) == before
    first = sorted((png_folder / "viral").glob("*.png"))[0]
    first.rename(first.with_name("P999_0.png"))  # same bytes, another patient: another dataset
    assert dataset_fingerprint(FOLDER, png_folder, cache) != before


def test_csv_dataset_covers_the_table_and_the_files_it_names(tmp_path):
    cache = HashCache(tmp_path / "hashes.json")
    root = tmp_path / "study"
    write_png(root / "img" / "a.png", 10)
    write_png(root / "img" / "b.png", 90)
    table = root / "meta.csv"
    table.write_text("path,label,patient_id\nimg/a.png,healthy,p1\nimg/b.png,viral,p2\n")
    before = dataset_fingerprint(CSV, table, cache)
    write_png(root / "img" / "b.png", 91)
    after_edit = dataset_fingerprint(CSV, table, cache)
    assert after_edit != before
    (root / "img" / "b.png").unlink()
    assert dataset_fingerprint(CSV, table, cache) not in (before, after_edit)
    moved = root.rename(tmp_path / "moved")
    write_png(moved / "img" / "b.png", 91)
    assert dataset_fingerprint(CSV, moved / "meta.csv", cache) == after_edit


def test_csv_image_root_is_where_named_files_are_read(tmp_path):
    from xaug.engine.recipe.schema import CsvConfig

    cache = HashCache(tmp_path / "hashes.json")
    root = tmp_path / "study"
    write_png(root / "images" / "a.png", 10)
    table = root / "meta.csv"
    table.write_text("path,label,patient_id\na.png,healthy,p1\n")
    with_root = CSV.model_copy(update={"csv": CsvConfig(image_root="images")})
    before = dataset_fingerprint(with_root, table, cache)
    assert dataset_fingerprint(CSV, table, cache) != before  # without image_root, a.png is missing
    write_png(root / "images" / "a.png", 11)
    assert dataset_fingerprint(with_root, table, cache) != before


def test_weights_file_and_folder(tmp_path):
    cache = HashCache(tmp_path / "hashes.json")
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"abc")
    assert path_fingerprint(weights, cache) == file_digest(weights)
    model = tmp_path / "base"
    (model / "unet").mkdir(parents=True)
    (model / "unet" / "w.safetensors").write_bytes(b"1")
    (model / "model_index.json").write_text("{}")
    digest = path_fingerprint(model, cache)
    (model / "unet" / "w.safetensors").write_bytes(b"2")
    assert path_fingerprint(model, cache) != digest
    assert path_fingerprint(tmp_path / "absent", cache) is None


def test_missing_dataset_is_a_clear_data_error(tmp_path):
    with pytest.raises(DataError, match="dataset folder not found"):
        dataset_fingerprint(FOLDER, tmp_path / "nope", HashCache(tmp_path / "h.json"))


def test_phantom_recipe_has_no_file_fingerprints_and_a_broken_cache_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("XAUG_CACHE_DIR", str(tmp_path))
    (tmp_path / "file-hashes.json").write_text("{not json")
    loaded = parse_recipe("name: p\nclassifiers: [{model: resnet10t}]\n", tmp_path / "r.yaml")
    assert loaded.fingerprints == InputFingerprints({})
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"w")
    loaded = parse_recipe("name: p\nclassifiers: [{model: resnet10t, weights: w.safetensors}]\n",
                          tmp_path / "r.yaml")
    assert fingerprint_inputs(loaded).by_path == {str(weights): file_digest(weights)}
    assert os.path.getsize(tmp_path / "file-hashes.json") > 0  # rewritten, valid
    assert HashCache(tmp_path / "file-hashes.json").digest(weights) == file_digest(weights)
