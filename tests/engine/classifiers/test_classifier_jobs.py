"""The train_classifier and evaluate jobs on a temporary store: arms, curves, stop and resume, test metrics."""

import numpy as np
import pytest
from classifier_helpers import CLASSES
from safetensors.torch import load_file

from xaug.engine.classifiers.checkpoint import BEST
from xaug.engine.generators.samples import sample_path, save_png
from xaug.engine.jobs import evaluate, train_classifier
from xaug.engine.jobs.context import JobInterrupted
from xaug.store.artifacts import record_artifact
from xaug.store.metrics import (
    load_class_metrics,
    load_confusion,
    load_metrics,
    load_results,
    record_metrics,
)


def job_config(spec, arm="baseline", amount=0, generator=None, seed=0):
    return {"classifier": spec.model_dump(), "fold": 0, "seed": seed, "arm": arm, "generator": generator,
            "amount": amount, "classes": CLASSES, "image_size": 32, "amp": True}


def curve(db, key, name):
    return [(row["step"], row["value"]) for row in load_metrics(db, key, name)]


def test_train_then_evaluate_records_everything(make_ctx, store_db, tiny_spec):
    spec = tiny_spec.model_copy(update={"epochs": 1, "batch_size": 12})  # 24 images: a 2-step run
    config = job_config(spec)
    train_ctx = make_ctx("train_classifier", "t" * 64, config)
    train_classifier.run(train_ctx)
    assert [s for s, _ in curve(store_db, train_ctx.key, "train_loss")] == [1, 2]
    assert [s for s, _ in curve(store_db, train_ctx.key, "val_loss")] == [2]
    results = load_results(store_db, train_ctx.key)
    assert results["train_images"] == 24 and results["optimizer_steps"] == 2 and results["best_step"] == 2
    assert results["best_val_loss"] == pytest.approx(curve(store_db, train_ctx.key, "val_loss")[0][1])
    assert (train_ctx.work_dir / BEST).is_file()
    row = store_db.execute("SELECT progress, progress_total FROM jobs WHERE key = ?", [train_ctx.key]).fetchone()
    assert tuple(row) == (2.0, 2.0)

    eval_ctx = make_ctx("evaluate", "e" * 64, config, deps=[{"key": train_ctx.key, "kind": "train_classifier"}])
    evaluate.run(eval_ctx)
    results = load_results(store_db, eval_ctx.key)
    assert {"accuracy", "balanced_accuracy", "macro_f1", "auroc"} <= set(results)
    assert all(0.0 <= results[k] <= 1.0 for k in ("accuracy", "balanced_accuracy", "macro_f1", "auroc"))
    rows = load_class_metrics(store_db, eval_ctx.key)
    assert [r["class_name"] for r in rows] == CLASSES
    assert [r["support"] for r in rows] == [4, 4, 4]
    assert all(r["auroc"] is not None for r in rows)
    confusion = np.array(load_confusion(store_db, eval_ctx.key, CLASSES))
    assert confusion.sum() == 12 and confusion.shape == (3, 3)
    predictions = np.load(eval_ctx.work_dir / "predictions.npz")
    assert predictions["probs"].shape == (12, 3)
    np.testing.assert_allclose(predictions["probs"].sum(1), 1.0, rtol=1e-5)
    assert results["accuracy"] == pytest.approx(np.mean(predictions["probs"].argmax(1) == predictions["labels"]))
    assert confusion.trace() == round(results["accuracy"] * 12)


def test_stop_and_resume_continue_the_curve_exactly(make_ctx, store_db, tiny_spec):
    spec = tiny_spec.model_copy(update={"epochs": 2})  # 3 steps per epoch, 6 in all
    config = job_config(spec)
    whole = make_ctx("train_classifier", "a" * 64, config)
    train_classifier.run(whole)

    key = "b" * 64
    stop_after_4 = lambda: len(load_metrics(store_db, key, "train_loss")) >= 4  # noqa: E731
    first = make_ctx("train_classifier", key, config, stop_requested=stop_after_4)
    with pytest.raises(JobInterrupted):
        train_classifier.run(first)
    assert [s for s, _ in curve(store_db, key, "train_loss")] == [1, 2, 3, 4]
    assert load_results(store_db, key) == {}
    # a point recorded after the checkpoint by an attempt that then crashed must not survive the resume
    record_metrics(store_db, key, 5, {"train_loss": 123.0})

    from xaug.engine.jobs.context import JobContext

    again = JobContext(key=key, kind="train_classifier", config=config, db=store_db, db_path=first.db_path,
                       deps=first.deps)
    train_classifier.run(again)
    resumed, reference = curve(store_db, key, "train_loss"), curve(store_db, whole.key, "train_loss")
    assert [s for s, _ in resumed] == [1, 2, 3, 4, 5, 6]
    assert [v for _, v in resumed] == pytest.approx([v for _, v in reference], rel=1e-5)
    count = store_db.execute("SELECT COUNT(*) FROM metrics WHERE job_key = ? AND name = 'train_loss'", [key])
    assert count.fetchone()[0] == 6
    best_a, best_b = load_file(str(whole.work_dir / BEST)), load_file(str(again.work_dir / BEST))
    for name in best_a:
        np.testing.assert_allclose(best_a[name].numpy(), best_b[name].numpy(), rtol=1e-5, atol=1e-6)


def sample_dep(make_ctx, store_db, artifact_root, n_per_class, size=48):
    """A finished `sample` job with n_per_class random PNGs per class (48 px: jobs resize them), as a dependency."""
    sample_key = "s" * 64
    dep = make_ctx.insert_job(sample_key, "sample", {"n_per_class": n_per_class})
    sample_dir = artifact_root / "jobs" / "sample" / sample_key[:16]
    rng = np.random.default_rng(0)
    for name in CLASSES:
        for i in range(n_per_class):
            path = sample_path(sample_dir, name, i)
            save_png(rng.integers(0, 255, (size, size), dtype=np.uint8), path)
            record_artifact(store_db, sample_key, "sample", str(path.relative_to(artifact_root)),
                            class_name=name, seed=0)
    return dep


def test_duplicate_and_synthetic_arms_add_images(make_ctx, store_db, tiny_spec, tmp_path):
    spec = tiny_spec.model_copy(update={"epochs": 1, "batch_size": 64})
    dup = make_ctx("train_classifier", "d" * 64, job_config(spec, arm="duplicate", amount=5))
    train_classifier.run(dup)
    assert load_results(store_db, dup.key)["train_images"] == 24 + 3 * 5

    samples = sample_dep(make_ctx, store_db, dup.artifact_root, 6)
    syn = make_ctx("train_classifier", "y" * 64, job_config(spec, arm="synthetic", amount=4, generator="gan"),
                   deps=[samples])
    train_classifier.run(syn)
    assert load_results(store_db, syn.key)["train_images"] == 24 + 3 * 4


@pytest.mark.parametrize("synthetic_fraction", [None, 0.5])
def test_every_arm_trains_the_same_optimizer_steps(make_ctx, store_db, tiny_spec, synthetic_fraction):
    """Baseline, synthetic and duplicate arms of one classifier: same step budget, same schedule, whatever they add
    (24 real images, batch 8, 2 epochs: 6 steps; +8 or +6 images per class used to mean 10 or 9 steps)."""
    spec = tiny_spec.model_copy(update={"epochs": 2, "batch_size": 8, "synthetic_fraction": synthetic_fraction})
    base = make_ctx("train_classifier", "a" * 64, job_config(spec))
    train_classifier.run(base)
    dup = make_ctx("train_classifier", "d" * 64, job_config(spec, arm="duplicate", amount=8))
    train_classifier.run(dup)
    samples = sample_dep(make_ctx, store_db, base.artifact_root, 6)
    syn = make_ctx("train_classifier", "y" * 64, job_config(spec, arm="synthetic", amount=6, generator="gan"),
                   deps=[samples])
    train_classifier.run(syn)

    arms = {"baseline": base.key, "duplicate": dup.key, "synthetic": syn.key}
    results = {arm: load_results(store_db, key) for arm, key in arms.items()}
    assert {arm: r["train_images"] for arm, r in results.items()} == {"baseline": 24, "duplicate": 48,
                                                                     "synthetic": 42}
    assert {arm: r["optimizer_steps"] for arm, r in results.items()} == {arm: 6 for arm in arms}
    assert all(r["real_train_images"] == 24 and 1 <= r["best_step"] <= 6 for r in results.values())
    lr = {arm: curve(store_db, key, "lr") for arm, key in arms.items()}
    assert lr["duplicate"] == lr["baseline"] == lr["synthetic"]  # one cosine schedule for all arms
    validated = {arm: [s for s, _ in curve(store_db, key, "val_loss")] for arm, key in arms.items()}
    assert validated == {arm: [3, 6] for arm in arms}  # selection at the same steps: one real epoch apart


@pytest.mark.parametrize("external", [False, True])
def test_jobs_run_on_a_real_prepared_phantom(store_db, tmp_path, tiny_spec, external):
    """The contract with the data layer: prepare_dataset's folder feeds train_classifier and evaluate (on the
    fold's test split, and with dataset.external_test on the images the subsample did not draw)."""
    from classifier_helpers import insert_job

    from xaug.engine.data.prepared import load_prepared, prepare_dataset
    from xaug.engine.jobs.context import JobContext
    from xaug.engine.recipe.schema import DatasetConfig, PhantomConfig, SplitsConfig, SubsampleConfig
    from xaug.store import artifact_root

    db_path = tmp_path / "xaug.db"
    prep = insert_job(store_db, "q" * 64, "prepare_data", {})
    dataset = DatasetConfig(source="phantom", image_size=32, phantom=PhantomConfig(scale=0.01, native_size=32))
    if external:
        dataset = DatasetConfig(source="phantom", image_size=32, external_test=True,
                                phantom=PhantomConfig(scale=0.03, native_size=32),
                                subsample=SubsampleConfig(fraction=0.5))
    folder = artifact_root(db_path) / "jobs" / "prepare_data" / prep["key"][:16]
    prepare_dataset(dataset, SplitsConfig(folds=2, validation_fraction=0.25), folder)
    n_train = len(load_prepared(folder).split(0, "train")[1])
    test_labels = load_prepared(folder).split(0, "test")[1]
    classes = ["healthy", "bacterial", "viral", "fungal", "covid19"]
    spec = tiny_spec.model_copy(update={"epochs": 1, "batch_size": 16})
    config = dict(job_config(spec, arm="duplicate", amount=2), classes=classes)
    train = insert_job(store_db, "r" * 64, "train_classifier", config, (prep["key"],))
    train_classifier.run(JobContext(key=train["key"], kind="train_classifier", config=config, db=store_db,
                                    db_path=db_path, deps={prep["key"]: prep}))
    assert load_results(store_db, train["key"])["train_images"] == n_train + 5 * 2
    insert_job(store_db, "v" * 64, "evaluate", config, (train["key"], prep["key"]))
    evaluate.run(JobContext(key="v" * 64, kind="evaluate", config=config, db=store_db, db_path=db_path,
                            deps={prep["key"]: prep, train["key"]: train}))
    supports = [r["support"] for r in load_class_metrics(store_db, "v" * 64)]
    assert supports == np.bincount(test_labels, minlength=5).tolist()
    assert np.array(load_confusion(store_db, "v" * 64, classes)).sum() == len(test_labels)
    if external:
        external_labels = load_prepared(folder).split(0, "external")[1]
        assert len(external_labels) > len(test_labels)
        insert_job(store_db, "x" * 64, "evaluate", {**config, "test_set": "external"}, (train["key"], prep["key"]))
        evaluate.run(JobContext(key="x" * 64, kind="evaluate", config={**config, "test_set": "external"},
                                db=store_db, db_path=db_path, deps={prep["key"]: prep, train["key"]: train}))
        supports = [r["support"] for r in load_class_metrics(store_db, "x" * 64)]
        assert supports == np.bincount(external_labels, minlength=5).tolist()
