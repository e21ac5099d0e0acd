"""The train_generator and sample jobs on a temporary store: losses, grids, checkpoints and samples land in it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from xaug.engine.data.prepared import prepare_dataset
from xaug.engine.generators.samples import load_samples
from xaug.engine.jobs import job_function
from xaug.engine.jobs.context import JobContext, JobInterrupted
from xaug.engine.jobs.sample import batch_seed
from xaug.engine.recipe.schema import DatasetConfig, GeneratorSpec, PhantomConfig, SplitsConfig
from xaug.store import artifact_root, open_store
from xaug.store.artifacts import load_artifacts
from xaug.store.jobs import submit_study
from xaug.store.metrics import load_metrics

CLASSES = ["healthy", "viral"]


def _job(key, kind, config, deps=()):
    return SimpleNamespace(key=key, kind=kind, label=f"{kind} {key[:6]}", config=config, priority=0, max_attempts=3,
                           gpus_needed=0, gpu_memory_mb=None, memory_group=None, deps=list(deps))


@pytest.fixture
def study(tmp_path):
    """A store with a prepared tiny phantom (2 classes, 32 px, 2 folds) and the jobs of one generator."""
    db_path = tmp_path / "x.db"
    db = open_store(db_path)
    dataset = DatasetConfig(source="phantom", image_size=32, classes=CLASSES, phantom=PhantomConfig(scale=0.1, native_size=64))
    splits = SplitsConfig(folds=2)
    prep = _job("p" * 64, "prepare_data", {"dataset": dataset.model_dump(mode="json"), "splits": splits.model_dump(mode="json")})

    def jobs_for(model: str, params: dict, per_class: bool = False):
        spec = GeneratorSpec(name=f"tiny-{model}", model=model, per_class=per_class, params=params).model_dump(mode="json")
        train = _job(model[0] * 64, "train_generator", {"generator": spec, "fold": 0, "seed": 0, "classes": CLASSES,
                                                        "image_size": 32, "amp": False}, [prep.key])
        sample = _job(model[0] + "s" * 63, "sample", {"generator": spec, "fold": 0, "seed": 7, "classes": CLASSES,
                                                     "n_per_class": 5}, [train.key])
        submit_study(db, "s", None, "name: s", {}, [prep, train, sample])
        return train, sample

    prepare_dataset(dataset, splits, artifact_root(db_path) / "jobs" / "prepare_data" / prep.key[:16])
    return SimpleNamespace(db=db, db_path=db_path, prep=prep, jobs_for=jobs_for)


def _ctx(study, job, deps, stop=lambda: False):
    return JobContext(key=job.key, kind=job.kind, config=job.config, db=study.db, db_path=study.db_path,
                      deps={d.key: {"kind": d.kind, "config": d.config} for d in deps}, stop_requested=stop)


def test_gan_jobs_record_losses_grids_checkpoint_and_samples(study, tiny_gan_params):
    train, sample = study.jobs_for("gan", {**tiny_gan_params, "steps": 3, "grid_every": 2})
    job_function("train_generator")(_ctx(study, train, [study.prep]))
    curves = {row["name"] for row in load_metrics(study.db, train.key)}
    assert {"g_loss", "d_loss", "ada_p"} <= curves
    assert [row["step"] for row in load_metrics(study.db, train.key, "g_loss")] == [1, 2, 3]
    grids = load_artifacts(study.db, train.key, kind="grid")
    assert [g["step"] for g in grids] == [2, 3] and grids[0]["meta"]["classes"] == CLASSES
    assert (artifact_root(study.db_path) / grids[0]["path"]).name == "step_000002.png"
    checkpoint, = load_artifacts(study.db, train.key, kind="checkpoint")
    assert (artifact_root(study.db_path) / checkpoint["path"] / "generator.json").exists()

    ctx = _ctx(study, sample, [train])
    job_function("sample")(ctx)
    rows = load_artifacts(study.db, sample.key, kind="sample")
    assert len(rows) == 10 and {r["class_name"] for r in rows} == set(CLASSES)
    assert (ctx.work_dir / "samples" / "viral" / "00004.png").exists()
    viral = load_samples(study.db, artifact_root(study.db_path), sample.key, "viral")
    assert viral.shape == (5, 32, 32) and viral.dtype == np.uint8
    assert load_samples(study.db, artifact_root(study.db_path), sample.key, "healthy", n=2).shape == (2, 32, 32)
    with pytest.raises(Exception, match="6 requested"):
        load_samples(study.db, artifact_root(study.db_path), sample.key, "healthy", n=6)

    # Resumable: a re-run keeps the PNGs already written (same files, same bytes) and re-indexes nothing twice.
    first = ctx.work_dir / "samples" / "healthy" / "00000.png"
    stamp = first.stat().st_mtime_ns
    job_function("sample")(_ctx(study, sample, [train]))
    assert first.stat().st_mtime_ns == stamp
    assert len(load_artifacts(study.db, sample.key, kind="sample")) == 10


def test_ddpm_train_job_stops_with_a_checkpoint_and_resumes(study, tiny_ddpm_params):
    train, sample = study.jobs_for("ddpm", {**tiny_ddpm_params, "steps": 3}, per_class=True)
    with pytest.raises(JobInterrupted):
        job_function("train_generator")(_ctx(study, train, [study.prep], stop=lambda: True))
    assert not load_artifacts(study.db, train.key, kind="checkpoint")
    assert [row["step"] for row in load_metrics(study.db, train.key, "loss")] == [1]
    job_function("train_generator")(_ctx(study, train, [study.prep]))
    assert [row["step"] for row in load_metrics(study.db, train.key, "loss")] == [1, 2, 3, 4, 5, 6]
    assert len(load_artifacts(study.db, train.key, kind="checkpoint")) == 1
    job_function("sample")(_ctx(study, sample, [train]))
    rows = load_artifacts(study.db, sample.key, kind="sample", class_name="healthy")
    assert [Path(r["path"]).name for r in rows] == [f"{i:05d}.png" for i in range(5)]
    assert {r["seed"] for r in rows} == {batch_seed(7, 0, 0), batch_seed(7, 0, 1)}  # batches of 3: 2 batches


def test_batch_seeds_differ_per_class_and_batch():
    seeds = {batch_seed(0, c, b) for c in range(3) for b in range(3)}
    assert len(seeds) == 9 and batch_seed(0, 1, 2) == batch_seed(0, 1, 2)
