"""Quick checks of the code paths only a CUDA GPU takes (marked `gpu`: skipped by default and without a GPU).
`scripts/gpu_check.sh` runs them (and the queue tests marked gpu) with `xaug bench gpu` on a GPU machine."""

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

    from xaug.engine.queue.gpus import detect_gpus
    from xaug.engine.queue.worker import peak_gpu_memory_mb

    x = torch.empty(64, 2**20, dtype=torch.uint8, device="cuda")
    assert peak_gpu_memory_mb() >= 64
    del x
    found = detect_gpus()
    assert found and all(g["memory_total_mb"] > 1024 for g in found)

