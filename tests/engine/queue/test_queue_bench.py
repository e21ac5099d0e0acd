"""The engine benchmark's pieces that need no worker processes: the big study and the busy-time arithmetic."""

from __future__ import annotations

import pytest
from xaug.engine.bench.engine_bench import _busy_seconds, bench_plan, big_recipe
from xaug.engine.planner import plan_study


def test_big_recipe_has_about_the_requested_number_of_jobs():
    assert abs(len(plan_study(big_recipe(10_000))) - 10_000) < 500


def test_plan_bench_enqueues_and_reuses():
    report = bench_plan(300)
    assert report["jobs"] > 100 and report["claimed"]
    assert report["plan_s"] > 0 and report["submit_s"] > 0


def test_busy_time_is_the_union_of_intervals():
    t = "2026-01-01T00:00:{:02d}+00:00".format
    assert _busy_seconds([(t(0), t(10)), (t(5), t(12)), (t(20), t(21))]) == 13.0


@pytest.mark.slow
def test_real_job_bench_runs_evaluate_both_ways_and_forked_workers_start_faster():
    from xaug.engine.bench.engine_bench import bench_real_job

    report = bench_real_job(n_jobs=2)
    assert report["kind"] == "evaluate" and report["own_work_s"] > 0
    for start in ("exec", "forkserver"):
        assert report[start]["done"] == 2
    # A fresh interpreter imports torch, timm and torchmetrics for every job; a forked worker finds them imported.
    assert report["forkserver"]["overhead_s"] < report["exec"]["overhead_s"] / 3
