"""The train_generator job with 2 GPUs' worth of processes (2 gloo processes on the CPU here): rank 0's losses
and grids reach the store through the job's worker, a stop request checkpoints the children, and the job resumes
(here in one process: the batch is global, so the process count may change between runs)."""

from __future__ import annotations

import pytest
from test_generator_jobs import CLASSES, _ctx, study  # noqa: F401  (the store fixture of the job tests)

from xaug.engine.generators import distributed
from xaug.engine.jobs import job_function
from xaug.engine.jobs.context import JobInterrupted
from xaug.store.artifacts import load_artifacts
from xaug.store.metrics import load_metrics

pytestmark = pytest.mark.timeout(240)


def test_two_process_job_records_once_stops_and_resumes(study, tiny_ddpm_params, monkeypatch):  # noqa: F811
    train, _ = study.jobs_for("ddpm", {**tiny_ddpm_params, "steps": 3, "grid_every": 1})
    monkeypatch.setattr(distributed, "process_count", lambda device: 2)
    with pytest.raises(JobInterrupted):
        job_function("train_generator")(_ctx(study, train, [study.prep], stop=lambda: True))
    assert [row["step"] for row in load_metrics(study.db, train.key, "loss")] == [1]
    assert [g["step"] for g in load_artifacts(study.db, train.key, kind="grid")] == [1]
    assert not load_artifacts(study.db, train.key, kind="checkpoint")

    monkeypatch.setattr(distributed, "process_count", lambda device: 1)
    job_function("train_generator")(_ctx(study, train, [study.prep]))
    assert [row["step"] for row in load_metrics(study.db, train.key, "loss")] == [1, 2, 3]
    grids = load_artifacts(study.db, train.key, kind="grid")
    assert [g["step"] for g in grids] == [1, 2, 3] and grids[0]["meta"]["classes"] == CLASSES
    assert len(load_artifacts(study.db, train.key, kind="checkpoint")) == 1
