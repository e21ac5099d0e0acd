"""Engine overhead: the start-up cost of a real job kind (evaluate of a tiny classifier) with workers forked from
the pre-imported fork server against fresh `python -m` workers, side by side, as a ratio to the job's own work;
dispatch latency per no-op job; the time to plan and enqueue a ~10,000-job study; and, for a finished study, the
engine's overhead relative to its job time.

This module is also the `noop` job kind used by the dispatch measurement (`run(ctx)` does nothing), declared as an
entry point in pyproject.toml like every job kind.
"""

from __future__ import annotations

import datetime as _dt
import statistics
import tempfile
import time
from pathlib import Path

def run(ctx) -> None:
    """The `noop` job kind: report one step and return."""
    ctx.progress(1, 1, "noop")


REAL_RECIPE = """\
name: bench-real
dataset: {source: phantom, image_size: 32, phantom: {scale: 0.3, seed: 0}}
splits: {folds: 2, seed: 0}
classifiers:
  - {name: tiny, model: test_resnet, epochs: 1, batch_size: 16}
amounts: [0]
seeds: [0]
resources: {device: cpu, max_attempts: 1}
"""
"""A study whose fold-0 evaluate job is the real job kind measured: a tiny timm classifier on ~100 phantom images."""


def bench_real_job(n_jobs: int = 4, poll_s: float = 0.05, starts: tuple[str, ...] = ("exec", "forkserver")) -> dict:
    """Run `n_jobs` copies of a real evaluate job through an engine for each worker start method, side by side.

    The job's own work is timed in this process (warm, median of 3 runs); a job's worker time is from its claim to
    its end as the store records them, so its overhead is worker time minus own work. The first job of a start
    method also pays one-time costs (the fork server's preload), reported separately.
    """
    from xaug.engine.queue.executor import LocalExecutor
    from xaug.engine.recipe import parse_recipe
    from xaug.store import jobs as q
    from xaug.store import open_store

    with tempfile.TemporaryDirectory(prefix="xaug-bench-") as tmp:
        store = Path(tmp) / "bench.db"
        db = open_store(store)
        evaluate = _prepare_real_study(db, store, parse_recipe(REAL_RECIPE, Path(tmp) / "bench.yaml"))
        own = _own_work_s(db, store, evaluate)
        report = {"kind": "evaluate", "jobs": n_jobs, "own_work_s": own}
        for start in starts:
            copies = [_copy_job(evaluate, start, i) for i in range(n_jobs)]
            q.submit_study(db, f"bench-{start}", None, "", {"name": f"bench-{start}"}, copies)
            began = time.perf_counter()
            _run_study(store, f"bench-{start}", LocalExecutor(store, cpu_threads=1, start=start), poll_s)
            wall = time.perf_counter() - began
            rows = [q.load_job(db, job.key) for job in copies]
            worker = [_seconds(r["started_at"], r["ended_at"]) for r in rows]
            steady = statistics.median(worker[1:] or worker)
            report[start] = {"wall_s": wall, "per_job_s": wall / n_jobs, "worker_median_s": steady,
                             "first_job_extra_s": worker[0] - steady, "overhead_s": steady - own,
                             "overhead_ratio": (steady - own) / own if own else None,
                             "done": sum(1 for r in rows if r["status"] == "done")}
        db.conn.close()
    return report


def _prepare_real_study(db, store: Path, loaded):
    """Submit the tiny study's prepare_data, fold-0 train_classifier and evaluate, run them; return the evaluate."""
    from xaug.engine.planner import plan_study
    from xaug.engine.queue.executor import LocalExecutor
    from xaug.store import jobs as q

    jobs = plan_study(loaded)
    evaluate = next(j for j in jobs if j.kind == "evaluate" and j.config["fold"] == 0)
    wanted = {evaluate.key, *evaluate.deps}
    setup = [j for j in jobs if j.key in wanted]
    q.submit_study(db, "bench-setup", None, "", {"name": "bench-setup"}, setup)
    _run_study(store, "bench-setup", LocalExecutor(store, cpu_threads=1, start="exec"), 0.05)
    failed = [r for r in q.list_jobs(db, study="bench-setup") if r["status"] != "done"]
    if failed:
        raise RuntimeError(f"the benchmark's setup job {failed[0]['label']} ended {failed[0]['status']}: "
                           f"{failed[0]['error']} (log {failed[0]['log_path']})")
    return evaluate


def _copy_job(job, start: str, i: int):
    """The same evaluate job under a new key (its config names the copy), so that it runs again."""
    from xaug.engine.planner import make_job

    return make_job(job.kind, {**job.config, "bench_copy": f"{start}-{i}"}, job.deps, label=f"{job.label} {start} {i}",
                    max_attempts=1)


def _own_work_s(db, store: Path, job, repeats: int = 3) -> float:
    """Median wall time of the job kind's `run(ctx)` in this process, its modules already imported."""
    from xaug.engine.jobs import job_function
    from xaug.engine.jobs.context import JobContext
    from xaug.store import jobs as q

    copy = _copy_job(job, "in-process", 0)
    q.submit_study(db, "bench-own", None, "", {"name": "bench-own"}, [copy])
    import torch

    run = job_function(job.kind)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers run it (cpu_threads=1)
    times = []
    for _ in range(repeats + 1):
        ctx = JobContext(key=copy.key, kind=copy.kind, config=copy.config, db=db, db_path=store.resolve(),
                         deps=q.load_job_deps(db, copy.key))
        began = time.perf_counter()
        run(ctx)
        times.append(time.perf_counter() - began)
    torch.set_num_threads(threads)
    return statistics.median(times[1:])  # the first run pays the imports and lazy initialisation


def _run_study(store: Path, study: str, executor, poll_s: float) -> None:
    from xaug.engine.queue.engine import Engine
    from xaug.store import jobs as q
    from xaug.store import open_store

    watch = open_store(store)
    engine = Engine(store, cpu_slots=1, gpus=[], executor=executor, poll_s=poll_s, grace_s=10)
    try:
        engine.run(until=lambda: q.study_finished(watch, study))
    finally:
        watch.conn.close()


def bench_dispatch(n_jobs: int = 20, slots: int = 1, poll_s: float = 0.5, start: str = "forkserver") -> dict:
    """Run `n_jobs` independent no-op jobs through an engine; per-job wall time, worker time and claim time."""
    from xaug.engine.planner import make_job
    from xaug.engine.queue.engine import Engine
    from xaug.engine.queue.executor import LocalExecutor
    from xaug.store import jobs as q
    from xaug.store import open_store

    with tempfile.TemporaryDirectory(prefix="xaug-bench-") as tmp:
        store = Path(tmp) / "bench.db"
        db = open_store(store)
        jobs = [make_job("noop", {"i": i}, label=f"noop {i}") for i in range(n_jobs)]
        q.submit_study(db, "bench", None, "", {"name": "bench"}, jobs)
        executor = LocalExecutor(store, start=start)
        engine = Engine(store, cpu_slots=slots, gpus=[], executor=executor, poll_s=poll_s, grace_s=10)
        claim_times: list[float] = []
        original = q.claim_job

        def timed_claim(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                claim_times.append(time.perf_counter() - start)

        start = time.perf_counter()
        q.claim_job = timed_claim
        try:
            engine.run(until=lambda: q.study_finished(db, "bench"))
        finally:
            q.claim_job = original
        wall = time.perf_counter() - start
        rows = q.list_jobs(db, study="bench")
        worker = [_seconds(r["started_at"], r["ended_at"]) for r in rows if r["ended_at"]]
        db.conn.close()
    return {"jobs": n_jobs, "slots": slots, "poll_s": poll_s, "start": start, "wall_s": wall,
            "per_job_s": wall * slots / n_jobs, "worker_median_s": statistics.median(worker) if worker else None,
            "claim_median_ms": 1000 * statistics.median(claim_times) if claim_times else None,
            "done": sum(1 for r in rows if r["status"] == "done")}


def big_recipe(target: int = 10_000):
    """A LoadedRecipe with ~`target` jobs: 5 folds, 2 generators x 5 amounts, many classifiers x seeds."""
    from xaug.engine.recipe import LoadedRecipe, Recipe

    per_classifier_seed = 5 * (1 + 2 * 5 + 5) * 2  # folds x arms x (train + evaluate)
    combos = max(1, round(target / per_classifier_seed))
    seeds = 7 if combos >= 7 else 1
    classifiers = max(1, -(-combos // seeds))
    data = {
        "name": "bench-large",
        "splits": {"folds": 5},
        "generators": [{"name": "gan", "model": "gan"}, {"name": "ddpm", "model": "ddpm"}],
        "classifiers": [{"name": f"c{i}", "model": "resnet18"} for i in range(classifiers)],
        "amounts": [0, 100, 250, 500, 750, 1000],
        "seeds": list(range(seeds)),
        "quality": {"features": "pixels"},  # no Inception weights needed: submitting checks weights first
    }
    return LoadedRecipe(recipe=Recipe.model_validate(data), path=Path(tempfile.gettempdir()) / "bench.yaml", text="")


def bench_plan(target: int = 10_000) -> dict:
    """Time to plan a ~`target`-job study, to enqueue it in a fresh store, and to re-submit it (all reused)."""
    from xaug.engine.planner import plan_study
    from xaug.engine.queue.submit import preflight, submit_recipe
    from xaug.store import jobs as q
    from xaug.store import open_store

    loaded = big_recipe(target)
    preflight(loaded)  # the recipe checks (a first timm import) are not what this measures
    start = time.perf_counter()
    jobs = plan_study(loaded)
    plan_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="xaug-bench-") as tmp:
        db = open_store(Path(tmp) / "plan.db")
        start = time.perf_counter()
        submit_recipe(db, loaded, jobs, checked=True)
        submit_s = time.perf_counter() - start
        start = time.perf_counter()
        submit_recipe(db, loaded, jobs, checked=True)
        resubmit_s = time.perf_counter() - start
        start = time.perf_counter()
        runnable = q.claim_job(db, lambda job: [], host="bench", log_path_for=lambda j: "/dev/null")
        claim_s = time.perf_counter() - start
        db.conn.close()
    return {"jobs": len(jobs), "plan_s": plan_s, "submit_s": submit_s, "resubmit_s": resubmit_s,
            "claim_in_full_queue_ms": 1000 * claim_s, "claimed": runnable is not None}


def study_overhead(store: str, study: str | None, per_job_s: float) -> dict:
    """For a finished study: its jobs' time (sum of worker wall times) against the engine's overhead, estimated
    from the no-op dispatch time and measured as the wall time during which no job ran."""
    from xaug.store import jobs as q
    from xaug.store import open_store
    from xaug.store.studies import list_studies

    db = open_store(store)
    if study is None:
        studies = list_studies(db)
        study = studies[0]["name"] if studies else None
    from xaug.store.studies import load_study

    submitted = (load_study(db, study) or {}).get("updated_at") or ""
    # Jobs that ended before the latest submission were reused from earlier runs: not part of this run's time.
    rows = [r for r in q.list_jobs(db, study=study) if r["status"] == "done" and (r["ended_at"] or "") > submitted]
    job_s = sum(_seconds(r["started_at"], r["ended_at"]) for r in rows)
    starts = [r["started_at"] for r in rows]
    ends = [r["ended_at"] for r in rows]
    makespan = _seconds(min(starts), max(ends)) if rows else 0.0
    idle = makespan - _busy_seconds([(r["started_at"], r["ended_at"]) for r in rows])
    db.conn.close()
    overhead = per_job_s * len(rows)
    return {"study": study, "jobs": len(rows), "job_s": job_s, "makespan_s": makespan,
            "overhead_s": overhead, "overhead_ratio": overhead / job_s if job_s else None,
            "idle_s": idle, "idle_ratio": idle / makespan if makespan else None}


def _busy_seconds(intervals: list[tuple[str, str]]) -> float:
    """Length of the union of [start, end] intervals: time during which at least one job ran."""
    spans = sorted((_dt.datetime.fromisoformat(a).timestamp(), _dt.datetime.fromisoformat(b).timestamp())
                   for a, b in intervals)
    busy, current_start, current_end = 0.0, None, None
    for start, end in spans:
        if current_end is None or start > current_end:
            if current_end is not None:
                busy += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        busy += current_end - current_start
    return busy


def run_engine_bench(n_jobs: int = 20, slots: int = 1, plan_size: int = 10_000, study_store: str | None = None,
                     study: str | None = None, real_jobs: int = 4) -> dict:
    """All engine measurements in one report."""
    report = {"real": bench_real_job(real_jobs)} if real_jobs > 0 else {}
    report.update({"dispatch": bench_dispatch(n_jobs, slots, poll_s=0.5),
                   "dispatch_fast_poll": bench_dispatch(n_jobs, slots, poll_s=0.05),
                   "plan": bench_plan(plan_size)})
    if study_store:
        report["study"] = study_overhead(study_store, study, report["dispatch"]["per_job_s"])
    return report


def render_table(report: dict):
    """The report as a rich table."""
    from rich.table import Table

    table = Table(title="engine overhead", box=None, header_style="bold")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    if "real" in report:
        _real_rows(table, report["real"])
    for name in ("dispatch", "dispatch_fast_poll"):
        d = report[name]
        table.add_row(f"no-op job wall time per job ({d['jobs']} jobs, {d['slots']} slot, "
                      f"poll {d['poll_s']}s)",
                      f"{d['per_job_s'] * 1000:.0f} ms")
        worker_ms = (d["worker_median_s"] or 0) * 1000
        table.add_row("  of which worker process (start to end, median)", f"{worker_ms:.0f} ms")
        table.add_row("  claim transaction (median)", f"{d['claim_median_ms'] or 0:.1f} ms")
    p = report["plan"]
    table.add_row(f"plan a {p['jobs']:,}-job study", f"{p['plan_s']:.2f} s")
    table.add_row("enqueue it in a fresh store", f"{p['submit_s']:.2f} s")
    table.add_row("re-submit it (every job reused)", f"{p['resubmit_s']:.2f} s")
    table.add_row("claim the next job in that queue", f"{p['claim_in_full_queue_ms']:.1f} ms")
    if "study" in report:
        s = report["study"]
        table.add_row(f"study {s['study']}: {s['jobs']} jobs, total job time", f"{s['job_s']:.1f} s")
        table.add_row("  estimated engine overhead (jobs x no-op wall time)", f"{s['overhead_s']:.1f} s")
        ratio = s["overhead_ratio"]
        table.add_row("  overhead / job time", "-" if ratio is None else f"{ratio:.1%}")
        idle = s["idle_ratio"]
        table.add_row(f"  measured: time with no job running (of {s['makespan_s']:.0f} s wall)",
                      f"{s['idle_s']:.1f} s" + ("" if idle is None else f" ({idle:.1%})"))
    return table


def _real_rows(table, real: dict) -> None:
    """Rows of the real-job comparison: each start method's overhead, absolute and as a ratio to the work."""
    table.add_row(f"{real['kind']} of a tiny classifier: the job's own work (in process, warm)",
                  f"{real['own_work_s'] * 1000:.0f} ms")
    names = {"exec": "fresh `python -m` worker", "forkserver": "forked from the pre-imported fork server"}
    for start in ("exec", "forkserver"):
        if start not in real:
            continue
        r = real[start]
        table.add_row(f"  {names[start]}: worker time per job (median of {real['jobs']})",
                      f"{r['worker_median_s'] * 1000:.0f} ms")
        table.add_row("    overhead per job (worker time - own work)",
                      f"{r['overhead_s'] * 1000:.0f} ms = {r['overhead_ratio']:.2f}x the work")
        table.add_row("    one-time extra of the first job", f"{r['first_job_extra_s'] * 1000:.0f} ms")
    if "exec" in real and "forkserver" in real and real["forkserver"]["overhead_s"] > 0:
        table.add_row("  overhead: fresh worker / forked worker",
                      f"{real['exec']['overhead_s'] / real['forkserver']['overhead_s']:.1f}x")


def _seconds(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    return (_dt.datetime.fromisoformat(end) - _dt.datetime.fromisoformat(start)).total_seconds()
