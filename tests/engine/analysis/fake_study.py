"""A store holding a finished fake study: evaluate jobs with results and class metrics, image quality, curves."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np

from xaug.store.jobs import claim_job, mark_job_done, submit_study
from xaug.store.metrics import record_class_metrics, record_metrics, record_results
from xaug.store.quality import record_quality
from xaug.store.studies import record_split_members

CLASSES = ["healthy", "viral", "fungal"]
CLASSIFIERS = ["resnet18", "convnext_atto"]
GENERATORS = {"goodgan": 0.05, "midsd": 0.0, "badddpm": -0.03}  # true effect on accuracy
AMOUNTS = [10, 20]
FOLDS = [0, 1, 2]
SEEDS = [0, 1]
FID = {"goodgan": 30.0, "midsd": 50.0, "badddpm": 80.0}
EXTERNAL_DROP = 0.1


def _key(*parts) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def _job(kind, config, deps=()):
    return SimpleNamespace(key=_key(kind, sorted(config.items())), kind=kind, label=kind, config=config,
                           priority=0, max_attempts=1, gpus_needed=0, gpu_memory_mb=None, memory_group=None,
                           deps=list(deps))


def build_fake_study(db, name: str = "toy", seed: int = 0, analyse: bool = True, external: bool = False,
                     recipe_classes: bool = True) -> dict:
    """Submit and 'finish' a study (with its stored analysis unless `analyse` is False); returns the jobs by kind.
    Accuracy = 0.70 + effect + noise per run; with `external`, each run is also evaluated on an external test set
    (dataset.external_test) with accuracy EXTERNAL_DROP lower. Without `recipe_classes` the recipe names no classes
    (a folder dataset's are found in it): only the jobs' configs give their order. Class metrics are recorded in
    alphabetical order, not the study's."""
    rng = np.random.default_rng(seed)
    prep = _job("prepare_data", {"fold": "all"})
    jobs = [prep]
    evaluations = []
    for clf in CLASSIFIERS:
        for fold in FOLDS:
            for s in SEEDS:
                run_noise = rng.normal(0, 0.01)  # shared by every arm of this fold x seed: the pairing matters
                arms = [("baseline", None, 0, 0.0)]
                arms += [("duplicate", None, a, 0.01) for a in AMOUNTS]
                arms += [("synthetic", g, a, eff) for g, eff in GENERATORS.items() for a in AMOUNTS]
                for arm, gen, amount, effect in arms:
                    config = dict(classifier={"model": clf, "name": None}, fold=fold, seed=s, arm=arm,
                                  generator=gen, amount=amount, classes=CLASSES)
                    train = _job("train_classifier", config, [prep.key])
                    ev = _job("evaluate", config, [train.key, prep.key])
                    jobs += [train, ev]
                    acc = 0.70 + effect + run_noise + rng.normal(0, 0.004)
                    viral_f1 = 0.2 + (0.15 if gen == "goodgan" else 0.0) + rng.normal(0, 0.01)
                    ext = _job("evaluate", {**config, "test_set": "external"}, [train.key, prep.key])
                    jobs += [ext] if external else []
                    evaluations.append((train, ev, acc, viral_f1, ext if external else None))
    for gen in GENERATORS:
        for fold in FOLDS:
            jobs.append(_job("image_quality", dict(generator={"name": gen, "model": "gan"}, fold=fold,
                                                   classes=CLASSES, quality={})))
    recipe = dict(name=name, dataset=dict(classes=CLASSES) if recipe_classes else {},
                  analysis=dict(test="corrected_t", correction="holm", alpha=0.05))
    submit_study(db, name, None, "name: " + name, recipe, jobs)
    while (job := claim_job(db, lambda row: [], host="test", log_path_for=lambda row: "")) is not None:
        mark_job_done(db, job["key"])  # claimed first: only a running job can finish
    record_split_members(db, prep.key, [
        dict(fold=f, split=split, image_id=f"{f}-{split}-{i}", patient=f"p{i}", label="healthy")
        for f in FOLDS for split, n in (("train", 80), ("val", 20), ("test", 40)) for i in range(n)])
    for train, ev, acc, viral_f1, ext in evaluations:
        fungal_f1 = 0.5 + 0.01 * rng.normal()
        for job, drop in ((ev, 0.0), (ext, EXTERNAL_DROP)):
            if job is None:
                continue
            record_results(db, job.key, dict(accuracy=acc - drop, balanced_accuracy=acc - 0.1 - drop,
                                             macro_f1=acc - 0.2 - drop))
            record_class_metrics(db, job.key, [
                dict(class_name="fungal", precision=0.5, recall=0.5, f1=fungal_f1, support=6),
                dict(class_name="healthy", precision=0.8, recall=0.9, f1=0.85, support=30),
                dict(class_name="viral", precision=viral_f1, recall=viral_f1, f1=viral_f1, support=4)])
        for epoch in range(3):
            record_metrics(db, train.key, epoch, dict(val_loss=1.0 / (epoch + 1) + acc / 10))
        for step in range(12):
            record_metrics(db, train.key, step, dict(train_loss=1.2 - 0.05 * step))
    for job in jobs:
        if job.kind == "image_quality":
            gen = job.config["generator"]["name"]
            rows = []
            for class_name in ["", *CLASSES]:
                n_real = 60 if class_name == "" else 20
                base = FID[gen] + job.config["fold"]
                for metric, value in (("fid", base), ("kid", base / 1000), ("precision", 0.6), ("recall", 0.5),
                                      ("density", 0.9), ("coverage", 0.7), ("ms_ssim", 0.3),
                                      ("memorised_fraction", 0.0)):
                    features = "pixels"
                    rows.append(dict(class_name=class_name, metric=metric, features=features, value=value,
                                     std=None, n_real=n_real, n_fake=n_real))
            record_quality(db, job.key, rows)
    if analyse:
        from xaug.engine.analysis.study import analyse_study, record_study_analysis

        record_study_analysis(db, analyse_study(db, name))
    by_kind: dict = {}
    for job in jobs:
        by_kind.setdefault(job.kind, []).append(job)
    return by_kind
