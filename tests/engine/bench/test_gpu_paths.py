"""Quick checks of the code paths only a CUDA GPU takes (marked `gpu`: skipped by default and without a GPU).
`scripts/gpu_check.sh` runs them with `xaug bench gpu` on a machine with a GPU."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _needs_cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


def test_peak_memory_sees_an_allocation():
    import torch

    from xaug.engine.bench.measure import PeakMemory

    with PeakMemory("cuda") as peak:
        x = torch.empty(256, 2**20, dtype=torch.uint8, device="cuda")  # 256 MiB
        del x
    assert peak.metric == "peak GiB" and 0.24 < peak.gib < 0.3


def test_the_tuned_classifier_arm_trains_in_bf16_channels_last_with_fused_adam():
    from xaug.engine.bench.classifier_bench import REFERENCE, TUNED, classifier_spec, random_images, train_arm

    spec = classifier_spec("resnet18", 64)
    images, labels = random_images(64, 64)
    for arm in (REFERENCE, TUNED):
        out = train_arm(spec, arm, images, labels, "cuda", budget_s=1.0, max_steps=20)
        assert out["steps"] >= 1 and out["steps_per_s"] > 0 and 0 < out["wait_share"] < 1 and out["peak_gib"] > 0


def test_jobs_side_by_side_use_the_gpu_from_forked_processes():
    from xaug.engine.bench.packing_bench import runs_per_hour

    rows = runs_per_hour("test_resnet", 32, "cuda", k=2, n_images=40, epochs=1, timeout_s=120)
    assert [r["metric"] for r in rows] == ["runs/hour", "GiB"]
    assert all(r["xaug"] > 0 and r["reference"] > 0 for r in rows)


def test_the_worker_reports_its_peak_and_the_scheduler_finds_the_gpus_memory():
    import torch

    from xaug.engine.queue.gpus import detect_gpu_memory
    from xaug.engine.queue.worker import peak_gpu_memory_mb

    x = torch.empty(64, 2**20, dtype=torch.uint8, device="cuda")
    assert peak_gpu_memory_mb() >= 64
    del x
    memory = detect_gpu_memory()
    assert memory and all(mb > 1024 for mb in memory.values())


def test_the_engine_runs_jobs_side_by_side_on_one_real_gpu(tmp_path, monkeypatch):
    """Three jobs declared at 2 GB share GPU 0 (their run times overlap); each worker records its peak."""
    from pathlib import Path

    queue_tests = Path(__file__).parents[1] / "queue"
    monkeypatch.syspath_prepend(str(queue_tests))
    monkeypatch.setenv("PYTHONPATH", str(queue_tests))
    monkeypatch.setenv("XAUG_EXTRA_JOB_KINDS", "fake=xaug_fake_jobs")
    from queue_helpers import fake, run_engine, submit

    from xaug.engine.jobs import JOB_KINDS
    from xaug.store import open_store
    from xaug.store.jobs import load_job

    monkeypatch.setitem(JOB_KINDS, "fake", "xaug_fake_jobs")
    store = tmp_path / "q.db"
    db = open_store(store)
    jobs = [fake(f"g{i}", gpus=1, gpu_memory_mb=2048, cuda_mb=256, steps=4, sleep=1.0) for i in range(3)]
    submit(db, jobs)
    run_engine(store, gpus=[0], timeout=120)
    rows = [load_job(db, job.key) for job in jobs]
    assert [r["status"] for r in rows] == ["done"] * 3 and all(r["gpus"] == "0" for r in rows), rows
    assert max(r["started_at"] for r in rows) < min(r["ended_at"] for r in rows)  # all three ran at once
    assert all(r["peak_gpu_memory_mb"] >= 256 for r in rows)
