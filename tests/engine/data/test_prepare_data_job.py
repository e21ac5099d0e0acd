"""The prepare_data job: files in its work_dir, split members with salted pseudonyms, skipped images, progress."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import write_png
from xaug.engine.data.prepared import load_prepared
from xaug.engine.errors import DataError
from xaug.engine.jobs import job_function
from xaug.engine.jobs.context import JobContext
from xaug.engine.recipe.schema import DatasetConfig, PhantomConfig, SplitsConfig
from xaug.store import artifact_root, open_store
from xaug.store.jobs import load_job, submit_study
from xaug.store.studies import load_skipped_images, load_split_members, pseudonymise, store_salt


def _context(tmp_path, dataset: DatasetConfig, splits: SplitsConfig):
    db_path = tmp_path / "x.db"
    db = open_store(db_path)
    config = {"dataset": dataset.model_dump(mode="json"), "splits": splits.model_dump(mode="json")}
    key = hashlib.sha256(repr(config).encode()).hexdigest()
    job = SimpleNamespace(key=key, kind="prepare_data", label="prepare data", config=config, priority=0,
                          max_attempts=1, gpus_needed=0, gpu_memory_mb=None, memory_group=None, deps=[])
    submit_study(db, "study", None, "name: study", {}, [job])
    return JobContext(key=key, kind="prepare_data", config=config, db=db, db_path=db_path)


def test_phantom_job_records_pseudonymised_split_members(tmp_path):
    dataset = DatasetConfig(image_size=32, phantom=PhantomConfig(scale=0.05, native_size=64))
    ctx = _context(tmp_path, dataset, SplitsConfig(folds=3))
    job_function("prepare_data")(ctx)

    data = load_prepared(ctx.work_dir)
    rows = load_split_members(ctx.db, ctx.key)
    assert len(rows) == 3 * len(data.labels)
    raw_ids = {f"{name}-{p:04d}" for name in data.classes for p in range(40)}
    salt = store_salt(ctx.db_path)
    assert {r["patient"] for r in rows} <= {pseudonymise(salt, pid) for pid in raw_ids}
    for row in rows:
        assert row["patient"] not in raw_ids and not any(pid in row["image_id"] for pid in raw_ids)
    for fold in range(3):
        members = load_split_members(ctx.db, ctx.key, fold)
        by_split = {s: {r["patient"] for r in members if r["split"] == s} for s in ("train", "val", "test")}
        assert not (by_split["train"] & by_split["test"]) and not (by_split["val"] & by_split["test"])
        assert not (by_split["train"] & by_split["val"])
    job = load_job(ctx.db, ctx.key)
    assert job["progress"] == job["progress_total"] == len(data.labels)
    assert "3 folds" in job["message"]


def test_folder_job_records_skipped_images(tmp_path, rg1_uncompressed):
    root = tmp_path / "data"
    for c, name in enumerate(["normal", "pneumonia"]):
        for p in range(3):
            write_png(root / name / f"{p}.png", 60 + 80 * c, seed=p)
    shutil.copy(rg1_uncompressed, root / "normal" / "chest.dcm")
    (root / "pneumonia" / "bad.png").write_bytes(b"not an image")
    dataset = DatasetConfig(source="folder", path=str(root), image_size=32, on_unreadable="skip",
                            one_patient_per_image=True)
    ctx = _context(tmp_path, dataset, SplitsConfig(folds=2))
    job_function("prepare_data")(ctx)
    skipped = load_skipped_images(ctx.db, ctx.key)
    salt = store_salt(ctx.db_path)  # the file's relative path, hashed under the store's key
    assert [r["source"] for r in skipped] == [f"pneumonia/file-{pseudonymise(salt, 'pneumonia/bad.png')}.png"]
    assert "not a readable PNG/JPEG" in skipped[0]["reason"]
    rows = load_split_members(ctx.db, ctx.key)
    assert len(rows) == 2 * 7 and "9RG1" not in {r["patient"] for r in rows}
    assert (ctx.work_dir / "images.npy").is_file() and (ctx.work_dir / "index.json").is_file()


def test_repeated_k_fold_job_stores_every_repetition(tmp_path):
    from xaug.store.analysis import load_split_sizes

    dataset = DatasetConfig(image_size=32, phantom=PhantomConfig(scale=0.05, native_size=64))
    ctx = _context(tmp_path, dataset, SplitsConfig(folds=3, repeats=2))
    job_function("prepare_data")(ctx)
    data = load_prepared(ctx.work_dir)
    rows = load_split_members(ctx.db, ctx.key)
    assert len(rows) == 2 * 3 * len(data.labels) and {r["repeat"] for r in rows} == {0, 1}
    tests = {(repeat, fold): {r["image_id"] for r in rows
                              if (r["repeat"], r["fold"], r["split"]) == (repeat, fold, "test")}
             for repeat in (0, 1) for fold in range(3)}
    assert tests[(0, 0)] != tests[(1, 0)]  # a fresh partition, not a copy
    for repeat in (0, 1):  # the job's data hands each repetition's folds to the jobs that ask for them
        _, labels = data.split(0, "test", repeat)
        assert len(labels) == len(tests[(repeat, 0)])
    sizes = load_split_sizes(ctx.db, "study")
    assert set(sizes) == {(r, f) for r in (0, 1) for f in range(3)}
    assert "3 folds x 2 repeats" in load_job(ctx.db, ctx.key)["message"]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file below root with its size and mtime, and every folder: what a test compares before and after."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "folder"
            for p in root.rglob("*")}


def test_a_csv_label_that_climbs_out_fails_cleanly_and_writes_nothing_outside_the_artifact_root(tmp_path):
    data = tmp_path / "site" / "data"
    rows = [("a.png", "healthy", "s1"), ("b.png", "healthy", "s2"), ("c.png", "../../x", "s3"),
            ("d.png", "../../x", "s4")]
    for n, (name, _, _) in enumerate(rows):
        write_png(data / name, 60, seed=n)
    table = data / "meta.csv"
    table.write_text("path,label,patient_id\n" + "".join(f"{p},{label},{s}\n" for p, label, s in rows))
    ctx = _context(tmp_path / "site" / "runs", DatasetConfig(source="csv", path=str(table), image_size=16),
                   SplitsConfig(folds=2))
    store = ctx.db_path
    root = artifact_root(store)
    before = _tree(tmp_path)

    with pytest.raises(DataError) as failed:
        job_function("prepare_data")(ctx)

    message = str(failed.value)
    assert "'../../x' is not a usable class name" in message and "dataset.csv.label_map" in message
    assert "'../../x': x" in message  # the mapping it suggests
    after = _tree(tmp_path)
    changed = {name for name in set(before) | set(after) if before.get(name) != after.get(name)}
    outside = {name for name in changed
               if not (tmp_path / name).is_relative_to(root) and not name.startswith("site/runs/x.")}
    assert outside == set()  # only the artifact root and the store's own files (db, WAL, key) may change
    assert not (tmp_path / "x").exists() and not (tmp_path / "site" / "x").exists()
    assert list(ctx.db["split_members"].rows) == []


def test_subsample_and_external_test_set_are_recorded(tmp_path):
    from xaug.engine.recipe.schema import SubsampleConfig
    from xaug.store.studies import load_external_members, load_subsample

    dataset = DatasetConfig(image_size=32, phantom=PhantomConfig(scale=0.1, native_size=64), external_test=True,
                            subsample=SubsampleConfig(per_class={"healthy": 30, "viral": 5}, seed=2))
    ctx = _context(tmp_path, dataset, SplitsConfig(folds=2))
    job_function("prepare_data")(ctx)
    draws = {d["class_name"]: d for d in load_subsample(ctx.db, ctx.key)}
    assert (draws["healthy"]["target"], draws["healthy"]["selected_images"]) == (30, 30)
    assert (draws["viral"]["target"], draws["viral"]["selected_images"]) == (5, 5)
    assert draws["fungal"]["selected_images"] == draws["fungal"]["available_images"]  # not listed: kept whole
    external = load_external_members(ctx.db, ctx.key)
    members = load_split_members(ctx.db, ctx.key, fold=0)
    assert len(external) == sum(d["available_images"] - d["selected_images"] for d in draws.values()) > 0
    assert not {r["patient"] for r in external} & {r["patient"] for r in members}
    assert {r["image_id"] for r in external}.isdisjoint(r["image_id"] for r in members)
    assert f"{len(external)} in the external test set" in load_job(ctx.db, ctx.key)["message"]
