"""The image_quality job end to end on tiny data: quality rows per class, reference and overall (macro-average),
the same-resolution pipeline, small-class notes, the near-copy threshold's sources and memorisation pair PNGs."""

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

    def split(self, fold, name, repeat=0):
        assert repeat == 0, "the fake holds one repetition of the k-fold split"
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
    # 60 validation images per class: fewer than memorisation_min_heldout (100) each, enough (120) together
    prepared = FakePrepared({"train": _split(40, 0), "val": _split(60, 10), "test": _split(30, 20)}, CLASSES)
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


def _by_key(rows):
    return {(r["reference"], r["class_name"], r["metric"], r["features"]): r for r in rows}


def test_image_quality_job_records_values_with_n_and_memorisation_pairs(job):
    image_quality.run(job)
    by = _by_key(load_quality(job.db, job.key))
    for reference in ("train", "heldout"):
        for class_name in ["", *CLASSES]:
            for metric in ("fid", "kid", "precision", "recall", "density", "coverage", "ms_ssim_real"):
                assert (reference, class_name, metric, "pixels") in by, (reference, class_name, metric)
    for class_name in ["", *CLASSES]:
        assert ("", class_name, "ms_ssim", "pixels") in by
        assert ("train", class_name, "memorised_fraction", "pixels") in by
    # the test split is never a reference
    assert {r["reference"] for r in load_quality(job.db, job.key)} == {"", "train", "heldout"}
    # fixed N recorded: 30 real asked but 40 (train) / 60 (val) available -> 30; 25 synthetic (all the sample made)
    for reference in ("train", "heldout"):
        row = by[(reference, "healthy", "fid", "pixels")]
        assert row["n_real"] == 30 and row["n_fake"] == 25
        assert not row["meaningful"] and "too few images" in row["note"]  # 25 < min_images (50)
    # overall = macro-average of the per-class values (here no class is meaningful: the mean of all, flagged)
    overall = by[("train", "", "fid", "pixels")]
    assert overall["value"] == pytest.approx(np.mean([by[("train", c, "fid", "pixels")]["value"] for c in CLASSES]))
    assert overall["n_real"] == 60 and overall["n_fake"] == 50 and not overall["meaningful"]
    # the planted copies are found in viral, not in healthy; the threshold came from both classes' held-out images
    viral = by[("train", "viral", "memorised_fraction", "pixels")]
    assert viral["value"] >= 3 / 25 and viral["meaningful"]
    assert "120 held-out (validation) images of all classes" in viral["note"]
    assert by[("train", "healthy", "memorised_fraction", "pixels")]["value"] <= 2 / 25
    assert by[("train", "", "memorised_fraction", "pixels")]["value"] == pytest.approx(
        (by[("train", "viral", "memorised_fraction", "pixels")]["value"]
         + by[("train", "healthy", "memorised_fraction", "pixels")]["value"]) / 2)

    pairs = load_artifacts(job.db, job.key, kind="memorisation_pair", class_name="viral")
    assert len(pairs) == image_quality.PAIRS_PER_CLASS
    assert all((job.artifact_root / p["path"]).is_file() for p in pairs)
    assert [p["meta"]["flagged"] for p in pairs[:3]] == [True, True, True]
    assert pairs[0]["meta"]["distance"] == pytest.approx(0.0, abs=1e-9)


def test_meaningful_classes_make_the_overall_value_and_the_note_names_the_rest(job):
    job.config["quality"].update(min_images=20)  # healthy and viral: 30 real, 25 synthetic -> both meaningful
    image_quality.run(job)
    by = _by_key(load_quality(job.db, job.key))
    assert by[("train", "viral", "kid", "pixels")]["meaningful"]
    assert by[("train", "", "kid", "pixels")]["note"] == "macro-average of 2 classes"
    job.config["quality"].update(min_images=28)  # 25 synthetic < 28: both flagged
    image_quality.run(job)
    by = _by_key(load_quality(job.db, job.key))
    assert not by[("heldout", "", "kid", "pixels")]["meaningful"]
    assert "no class has enough images" in by[("heldout", "", "kid", "pixels")]["note"]


def test_without_enough_held_out_images_no_near_copy_rate_is_recorded(job, monkeypatch):
    prepared = image_quality._load_prepared(job)
    small = FakePrepared({**prepared.images, "val": _split(20, 10)}, CLASSES)  # 40 held-out images < 100
    monkeypatch.setattr(image_quality, "_load_prepared", lambda ctx: small)
    image_quality.run(job)
    by = _by_key(load_quality(job.db, job.key))
    assert not any(metric == "memorised_fraction" for _, _, metric, _ in by)  # no invented rate
    assert "no near-copy rate: 40 held-out images in all" in by[("train", "viral", "nn_distance_ratio", "pixels")]["note"]
    pairs = load_artifacts(job.db, job.key, kind="memorisation_pair", class_name="viral")
    assert pairs and all(p["meta"]["flagged"] is None for p in pairs)  # closest pairs still shown, unjudged


def test_image_quality_job_on_a_prepared_phantom(store_db, tmp_path):
    """With the real prepared-data loader: phantom images, 'synthetic' = real test images plus planted copies."""
    from xaug.engine.data.prepared import load_prepared, prepare_dataset
    from xaug.engine.recipe.schema import DatasetConfig, PhantomConfig, SplitsConfig

    prep_key, sample_key = "p" * 40, "s" * 40
    ctx = JobContext(key="q" * 40, kind="image_quality", db=store_db, db_path=tmp_path / "xaug.db",
                     config=dict(generator={"name": "g"}, fold=1, classes=["healthy", "covid19"],
                                 quality=dict(n_per_class=20, features="pixels", kid_subset_size=10,
                                              memorisation_quantile=10, memorisation_min_heldout=10)),
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
    by = _by_key(load_quality(store_db, ctx.key))
    assert by[("train", "", "fid", "pixels")]["n_fake"] == 12
    assert by[("train", "covid19", "memorised_fraction", "pixels")]["value"] >= 2 / 6
    pairs = load_artifacts(store_db, ctx.key, kind="memorisation_pair", class_name="covid19")
    assert pairs[0]["meta"]["flagged"] and (ctx.artifact_root / pairs[0]["path"]).is_file()
