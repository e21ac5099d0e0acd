"""The image_quality job end to end on tiny data: quality rows per class and overall, memorisation pair PNGs."""

from dataclasses import dataclass

import numpy as np
import pytest

from xaug.engine.generators.samples import sample_path, save_png
from xaug.engine.jobs import image_quality
from xaug.engine.jobs.context import JobContext
from xaug.store.artifacts import load_artifacts, record_artifacts
from xaug.store.quality import load_quality

CLASSES = ["healthy", "viral"]


@dataclass
class FakePrepared:
    """Stands in for xaug.engine.data.prepared.PreparedData: split(fold, name) -> (images, labels)."""

    images: dict
    classes: list

    def split(self, fold, name):
        return self.images[name]


def _images(n, seed, level, size=32):
    rng = np.random.default_rng(seed)
    base = rng.normal(level, 30, (n, 1, 1)) + rng.normal(0, 25, (n, size, size))
    return np.clip(base, 0, 255).astype(np.uint8)


def _split(n, seed):
    images = np.concatenate([_images(n, seed, 90), _images(n, seed + 1, 160)])
    return images, np.repeat([0, 1], n)


@pytest.fixture
def job(store_db, tmp_path, monkeypatch):
    prepared = FakePrepared({"train": _split(40, 0), "val": _split(30, 10), "test": _split(30, 20)}, CLASSES)
    monkeypatch.setattr(image_quality, "_load_prepared", lambda ctx: prepared)
    ctx = JobContext(key="q" * 40, kind="image_quality", db=store_db, db_path=tmp_path / "xaug.db",
                     config=dict(generator={"name": "g", "model": "gan"}, fold=0, classes=CLASSES,
                                 quality=dict(n_per_class=30, features="pixels", kid_subset_size=20)),
                     deps={"s" * 40: dict(kind="sample", config=dict(n_per_class=25)),
                           "p" * 40: dict(kind="prepare_data", config={})})
    sample_dir = ctx.artifact_root / "jobs" / "sample" / ("s" * 16)
    rows = []
    train_images, train_labels = prepared.split(0, "train")
    for c, name in enumerate(CLASSES):
        fake = _images(25, 100 + c, 90 if c == 0 else 160)
        if name == "viral":  # plant three copies of viral training images
            fake[:3] = train_images[train_labels == 1][:3]
        for i, img in enumerate(fake):
            path = sample_path(sample_dir, name, i)
            save_png(img, path)
            rows.append(dict(job_key="s" * 40, kind="sample", path=ctx.relpath(path), class_name=name, seed=0))
    record_artifacts(store_db, rows)
    return ctx


def test_image_quality_job_records_values_with_n_and_memorisation_pairs(job):
    image_quality.run(job)
    rows = load_quality(job.db, job.key)
    by = {(r["class_name"], r["metric"], r["features"]): r for r in rows}
    for class_name in ["", *CLASSES]:
        for metric in ("fid", "kid", "precision", "recall", "density", "coverage"):
            assert (class_name, metric, "pixels") in by, (class_name, metric)
        assert (class_name, "ms_ssim", "pixels") in by
        assert (class_name, "memorised_fraction", "pixels") in by
    # fixed N recorded: 30 real asked but 40 available -> 30; 25 synthetic (all the sample job made)
    assert by[("healthy", "fid", "pixels")]["n_real"] == 30 and by[("healthy", "fid", "pixels")]["n_fake"] == 25
    assert by[("", "fid", "pixels")]["n_real"] == 60 and by[("", "fid", "pixels")]["n_fake"] == 50
    # the planted copies are found in viral, not in healthy
    assert by[("viral", "memorised_fraction", "pixels")]["value"] >= 3 / 25
    assert by[("healthy", "memorised_fraction", "pixels")]["value"] <= 2 / 25
    assert by[("", "memorised_fraction", "pixels")]["value"] == pytest.approx(
        (by[("viral", "memorised_fraction", "pixels")]["value"] * 25
         + by[("healthy", "memorised_fraction", "pixels")]["value"] * 25) / 50)

    pairs = load_artifacts(job.db, job.key, kind="memorisation_pair", class_name="viral")
    assert len(pairs) == image_quality.PAIRS_PER_CLASS
    assert all((job.artifact_root / p["path"]).is_file() for p in pairs)
    assert [p["meta"]["flagged"] for p in pairs[:3]] == [True, True, True]
    assert pairs[0]["meta"]["distance"] == pytest.approx(0.0, abs=1e-9)


def test_image_quality_job_on_a_prepared_phantom(store_db, tmp_path):
    """With the real prepared-data loader: phantom images, 'synthetic' = real test images plus planted copies."""
    from xaug.engine.data.prepared import load_prepared, prepare_dataset
    from xaug.engine.recipe.schema import DatasetConfig, PhantomConfig, SplitsConfig

    prep_key, sample_key = "p" * 40, "s" * 40
    ctx = JobContext(key="q" * 40, kind="image_quality", db=store_db, db_path=tmp_path / "xaug.db",
                     config=dict(generator={"name": "g"}, fold=1, classes=["healthy", "covid19"],
                                 quality=dict(n_per_class=20, features="pixels", kid_subset_size=10)),
                     deps={sample_key: dict(kind="sample", config=dict(n_per_class=6)),
                           prep_key: dict(kind="prepare_data", config={})})
    prep_dir = ctx.work_dir_of(prep_key)
    prepare_dataset(DatasetConfig(image_size=32, phantom=PhantomConfig(scale=0.2, native_size=32)),
                    SplitsConfig(folds=3), prep_dir)
    data = load_prepared(prep_dir)
    test_images, test_labels = data.split(1, "test")
    train_images, train_labels = data.split(1, "train")
    rows = []
    for name in ctx.config["classes"]:
        label = data.classes.index(name)
        fake = test_images[test_labels == label][:6].copy()
        if name == "covid19":
            fake[:2] = train_images[train_labels == label][:2]
        for i, img in enumerate(fake):
            path = sample_path(ctx.artifact_root / "samples-dir", name, i)
            save_png(img, path)
            rows.append(dict(job_key=sample_key, kind="sample", path=ctx.relpath(path), class_name=name))
    record_artifacts(store_db, rows)
    image_quality.run(ctx)
    by = {(r["class_name"], r["metric"], r["features"]): r for r in load_quality(store_db, ctx.key)}
    assert by[("", "fid", "pixels")]["n_fake"] == 12
    assert by[("covid19", "memorised_fraction", "pixels")]["value"] >= 2 / 6
    pairs = load_artifacts(store_db, ctx.key, kind="memorisation_pair", class_name="covid19")
    assert pairs[0]["meta"]["flagged"] and (ctx.artifact_root / pairs[0]["path"]).is_file()
