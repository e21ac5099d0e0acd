"""Names from data never lead a path out of its folder: class names are checked where every source passes, and
every path built from data goes through artifact_path, which refuses to leave its root."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import write_png
from xaug.engine.data.folder import load_folder
from xaug.engine.errors import DataError, RecipeError
from xaug.engine.generators.samples import sample_path
from xaug.engine.jobs import job_function
from xaug.engine.jobs.context import JobContext
from xaug.engine.recipe import parse_recipe
from xaug.engine.recipe.schema import CsvConfig, DatasetConfig, SplitsConfig
from xaug.store import artifact_root, open_store
from xaug.store.artifacts import artifact_path
from xaug.store.jobs import submit_study


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file below root with its size and mtime, and every folder: what a test compares before and after."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "folder"
            for p in root.rglob("*")}


def _prepare_job(db_path: Path, dataset: DatasetConfig) -> JobContext:
    db = open_store(db_path)
    config = {"dataset": dataset.model_dump(mode="json"), "splits": SplitsConfig(folds=2).model_dump(mode="json")}
    key = hashlib.sha256(repr(config).encode()).hexdigest()
    job = SimpleNamespace(key=key, kind="prepare_data", label="prepare data", config=config, priority=0,
                          max_attempts=1, gpus_needed=0, deps=[])
    submit_study(db, "study", None, "name: study", {}, [job])
    return JobContext(key=key, kind="prepare_data", config=config, db=db, db_path=db_path)


def test_a_csv_label_that_climbs_out_fails_cleanly_and_writes_nothing_outside_the_artifact_root(tmp_path):
    data = tmp_path / "site" / "data"
    rows = [("a.png", "healthy", "s1"), ("b.png", "healthy", "s2"), ("c.png", "../../x", "s3"),
            ("d.png", "../../x", "s4")]
    for n, (name, _, _) in enumerate(rows):
        write_png(data / name, 60, seed=n)
    table = data / "meta.csv"
    table.write_text("path,label,patient_id\n" + "".join(f"{p},{label},{s}\n" for p, label, s in rows))
    store = tmp_path / "site" / "runs" / "study.db"
    ctx = _prepare_job(store, DatasetConfig(source="csv", path=str(table), image_size=16))
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
               if not (tmp_path / name).is_relative_to(root) and not name.startswith("site/runs/study.")}
    assert outside == set()  # only the artifact root and the store's own files (db, WAL, key) may change
    assert not (tmp_path / "x").exists() and not (tmp_path / "site" / "x").exists()
    assert list(ctx.db["split_members"].rows) == []


def test_artifact_path_refuses_every_way_out(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    assert artifact_path(root, "samples/viral", "00001.png") == root / "samples" / "viral" / "00001.png"
    for bad in ("..", "../x", "a/../../x", "/etc/passwd", "", "a\x00b", "..\\..\\x"):
        with pytest.raises(DataError, match="refusing"):
            artifact_path(root, "samples", bad)
    os.symlink(tmp_path, root / "link")  # a folder inside that points outside
    with pytest.raises(DataError, match="outside"):
        artifact_path(root, "link", "x")
    with pytest.raises(DataError, match="refusing"):
        sample_path(root / "job", "../../x", 0)


def test_an_unusable_class_folder_name_is_named(tmp_path):
    for name in ("healthy", "no finding"):
        for i in range(2):
            write_png(tmp_path / "data" / name / f"P{name[0]}{i}_0.png", 50, seed=i)
    cfg = DatasetConfig(source="folder", path=str(tmp_path / "data"), patient_pattern=r"^(P\w+)_")
    with pytest.raises(DataError, match=r"no finding/P.*'no finding' is not a usable class name.*no_finding"):
        load_folder(cfg)


@pytest.mark.parametrize("section", ["classes: [healthy, ../x]", "csv: {label_map: {NORMAL: healthy, V: /tmp/x}}"])
def test_recipe_class_names_must_be_safe(section):
    text = (f"name: s\ndataset:\n  source: csv\n  path: t.csv\n  {section}\n"
            "classifiers: [{model: resnet10t}]\n")
    with pytest.raises(RecipeError, match=r"dataset\.(classes\[1\]|csv\.label_map\.V).*should match pattern"):
        parse_recipe(text)
