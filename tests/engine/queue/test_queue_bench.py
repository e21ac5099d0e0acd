"""The engine benchmark's pieces that need no worker processes: the big study and the busy-time arithmetic."""

from __future__ import annotations

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
