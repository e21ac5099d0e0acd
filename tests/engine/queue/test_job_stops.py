"""Every job kind stops on cancel and ends cancelled, never done; the ETA after a resume counts only this process.

The real job kinds run on a tiny phantom study, each through the worker's own `run_job` in this process (claimed
first, as the engine would), so that the moment of the cancel is exact.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
from xaug.engine.queue.worker import EXIT_DONE, EXIT_INTERRUPTED, run_job
from xaug.store import jobs as q
from xaug.store import open_store

RECIPE = """\
name: stops
dataset: {source: phantom, image_size: 32, phantom: {scale: 0.3, seed: 0}}
splits: {folds: 2, seed: 0}
classifiers:
  - {name: tiny, model: test_resnet, epochs: 1, batch_size: 16}
amounts: [0]
seeds: [0]
resources: {device: cpu, max_attempts: 2}
"""
QUALITY_CLASSES = ["healthy", "bacterial"]


def _run(store, key: str, cancel: bool = False) -> int:
    """Claim job `key` and run it with the worker's `run_job`, as its worker process would; with `cancel`, a
    cancel is requested once it is running, before its code starts."""
    db = open_store(store)
    claimed = q.claim_job(db, lambda job: [] if job["key"] == key else None, host="test",
                          log_path_for=lambda job: "/dev/null")
    assert claimed is not None and claimed["key"] == key
    if cancel:
        assert q.cancel_job(db, key) == "cancel_requested"
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)}
    try:
        return run_job(store, key)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        db.conn.close()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A store whose tiny study has prepare_data and the fold-0 train_classifier done; its evaluate is queued."""
    from xaug.engine.planner import plan_study
    from xaug.engine.recipe import parse_recipe

    tmp = tmp_path_factory.mktemp("stops")
    store = tmp / "stops.db"
    jobs = plan_study(parse_recipe(RECIPE, tmp / "stops.yaml"))
    evaluate = next(j for j in jobs if j.kind == "evaluate" and j.config["fold"] == 0)
    by_key = {j.key: j for j in jobs}
    setup = [by_key[k] for k in evaluate.deps]
    db = open_store(store)
    q.submit_study(db, "stops", None, "", {"name": "stops"}, [*setup, evaluate])
    for job in sorted(setup, key=lambda j: j.kind != "prepare_data"):
        assert _run(store, job.key) == EXIT_DONE
    return {"store": store, "db": db, "evaluate": evaluate,
            "prepare": next(j for j in setup if j.kind == "prepare_data")}


def test_a_cancelled_evaluate_ends_cancelled_with_no_results(study):
    from xaug.store.metrics import load_results

    store, db, evaluate = study["store"], study["db"], study["evaluate"]
    assert _run(store, evaluate.key, cancel=True) == EXIT_INTERRUPTED
    row = q.load_job(db, evaluate.key)
    assert row["status"] == "cancelled" and row["attempts"] == 0
    assert load_results(db, evaluate.key) == {}
    # Without a cancel the same job runs to its end: the cancel, not the data, stopped it.
    assert q.retry_job(db, evaluate.key)
    assert _run(store, evaluate.key) == EXIT_DONE
    assert 0.0 <= load_results(db, evaluate.key)["accuracy"] <= 1.0


def _sample_job(db, study_root, prepare) -> object:
    """A done `sample` job whose 'synthetic' images are real training images of fold 0 plus noise."""
    from xaug.engine.data.prepared import load_prepared
    from xaug.engine.generators.samples import sample_path, save_png
    from xaug.engine.planner import make_job
    from xaug.store import artifact_root
    from xaug.store.artifacts import record_artifacts

    sample = make_job("sample", {"generator": {"name": "g", "model": "gan"}, "fold": 0, "n_per_class": 12},
                      [prepare.key], label="sample g f0")
    q.submit_study(db, "samples", None, "", {"name": "samples"}, [sample])
    prepared = load_prepared(artifact_root(study_root) / "jobs" / "prepare_data" / prepare.key[:16])
    images, labels = prepared.split(0, "train")
    root = artifact_root(study_root)
    folder = root / "jobs" / "sample" / sample.key[:16]
    rng = np.random.default_rng(0)
    rows = []
    for name in QUALITY_CLASSES:
        real = images[labels == prepared.classes.index(name)][:12]
        for i, image in enumerate(real):
            noisy = np.clip(image.astype(int) + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
            path = sample_path(folder, name, i)
            save_png(noisy, path)
            rows.append(dict(job_key=sample.key, kind="sample", path=str(path.relative_to(root)), class_name=name,
                             seed=0))
    record_artifacts(db, rows)
    db.execute("UPDATE jobs SET status = 'done' WHERE key = ?", [sample.key])
    db.conn.commit()
    return sample


def test_a_cancelled_image_quality_job_ends_cancelled_with_no_values(study):
    from xaug.engine.planner import make_job
    from xaug.store.quality import load_quality

    store, db, prepare = study["store"], study["db"], study["prepare"]
    sample = _sample_job(db, store, prepare)
    job = make_job("image_quality", {"generator": {"name": "g", "model": "gan"}, "fold": 0,
                                     "classes": QUALITY_CLASSES,
                                     "quality": {"n_per_class": 12, "features": "pixels", "kid_subset_size": 5,
                                                 "memorisation": False}},
                   [sample.key, prepare.key], label="image_quality g f0")
    q.submit_study(db, "quality", None, "", {"name": "quality"}, [job])
    assert _run(store, job.key, cancel=True) == EXIT_INTERRUPTED
    assert q.load_job(db, job.key)["status"] == "cancelled"
    assert load_quality(db, job.key) == []
    assert q.retry_job(db, job.key)
    assert _run(store, job.key) == EXIT_DONE
    assert {row["class_name"] for row in load_quality(db, job.key)} >= {"", *QUALITY_CLASSES}


def test_eta_after_a_resume_uses_only_the_steps_done_since(store_db, tmp_path, monkeypatch):
    from xaug.engine.jobs import context
    from xaug.engine.jobs.context import JobContext
    from xaug.engine.planner import make_job

    job = make_job("fake", {"name": "resumed"}, label="resumed")
    q.submit_study(store_db, "s", None, "", {"name": "s"}, [job])
    clock = {"now": 1000.0}
    monkeypatch.setattr(context.time, "monotonic", lambda: clock["now"])
    ctx = JobContext(key=job.key, kind="fake", config={}, db=store_db, db_path=tmp_path / "xaug.db")
    clock["now"] += 100.0  # loading the checkpoint took 100 s; the job resumes at step 500 of 1000
    ctx.progress(500, 1000)
    assert q.load_job(store_db, job.key)["eta_s"] is None  # no rate yet
    clock["now"] += 10.0
    ctx.progress(510, 1000)  # 1 step/s since the resume
    assert q.load_job(store_db, job.key)["eta_s"] == pytest.approx(490.0)
