"""`xaug submit|status|cancel|retry|priority|logs|pause|resume` and `xaug bench engine`: the queue from a shell.

Every command is a small update of the durable queue in the store, so it works whether the engine runs or not.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from xaug.engine.cli import app, bench_app, default_store
from xaug.store.errors import EngineError
from xaug.store.liveness import engine_alive

console = Console()

StoreOption = Annotated[str | None, typer.Option("--store", "-s", help="Study database ($XAUG_STORE or ./xaug.db).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def open_existing_store(store: str | None):
    """Open a store that must already exist (default: $XAUG_STORE or ./xaug.db), as its owner only."""
    from xaug.engine.queue.engine import ensure_own_store
    from xaug.store import open_store

    return open_store(ensure_own_store(store or default_store()), create=False)


def open_or_create_store(store: str | None):
    """Open (creating 0600 if needed) a store (default: $XAUG_STORE or ./xaug.db), as its owner only."""
    from xaug.engine.queue.engine import ensure_own_store
    from xaug.store import open_store

    store = store or default_store()
    return open_store(ensure_own_store(store))


def resolve_key(db, prefix: str) -> str:
    """The one job key that starts with `prefix`, or an EngineError saying why not."""
    from xaug.store.jobs import find_job_keys

    keys = find_job_keys(db, prefix.strip())
    if not keys:
        raise EngineError(f"no job key starts with '{prefix}'; list keys with `xaug status --all`")
    if len(keys) > 1 and prefix not in keys:
        shown = ", ".join(k[:16] for k in keys[:5])
        raise EngineError(f"'{prefix}' matches {len(keys)} jobs ({shown}...); give more characters of the key")
    return prefix if prefix in keys else keys[0]


def engine_line(db) -> str:
    """'engine pid 123 on host (heartbeat ...)', or that no engine runs (none holds the lock, or it died)."""
    from xaug.store.jobs import is_paused, load_engine

    row = load_engine(db)
    paused = " [yellow]queue paused[/]" if is_paused(db) else ""
    if row is None:
        return f"[dim]no engine running[/] (start one: xaug-engine --store ...){paused}"
    if not engine_alive(row):
        return (f"[red]no engine running[/]: engine pid {row['pid']} on {row['host']} died (last heartbeat "
                f"{row['heartbeat_at'][11:19]} UTC); start one: xaug-engine --store ...{paused}")
    return f"engine pid {row['pid']} on {row['host']}, heartbeat {row['heartbeat_at'][11:19]} UTC{paused}"


@app.command("submit")
def submit(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    store: StoreOption = None,
    priority: Annotated[int, typer.Option(help="Added to the priority of the study's new jobs.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Plan a recipe and add its jobs to the queue (the engine may be down; it picks them up when it runs).

    Example: xaug submit recipes/paper.yaml --store runs/paper.db
    """
    from xaug.engine.queue.submit import preflight, submit_recipe
    from xaug.engine.recipe import load_recipe

    loaded = load_recipe(recipe)
    preflight(loaded)  # before the store is opened: a bad recipe leaves none behind
    db = open_or_create_store(store)
    _, counts = submit_recipe(db, loaded, priority=priority, checked=True)
    if as_json:
        print(json.dumps({"study": loaded.recipe.name, **counts}))
        return
    console.print(f"submitted study [bold]{loaded.recipe.name}[/]: {counts['jobs']} jobs, {counts['new']} new, "
                  f"{counts['reused']} reused (done), {counts['requeued']} requeued, "
                  f"{counts['pending']} already queued")
    console.print(engine_line(db))


def _job_state(row: dict) -> str:
    return row["status"]


def _job_json(row: dict) -> dict:
    keep = ("key", "kind", "label", "status", "priority", "attempts", "max_attempts", "gpus_needed", "progress",
            "progress_total", "message", "eta_s", "pid", "host", "gpus", "log_path", "started_at", "ended_at",
            "exit_code", "error", "blocked_by", "deps", "slurm_job_id", "slurm_state", "gpu_memory_mb",
            "peak_gpu_memory_mb")
    out = {k: row.get(k) for k in keep}
    out["state"] = _job_state(row)
    return out


def _fmt_progress(row: dict) -> str:
    total = row["progress_total"] or 0
    if row["status"] == "done":
        return "100%"
    if total <= 0:
        return ""
    eta = f" eta {row['eta_s']:.0f}s" if row.get("eta_s") else ""
    return f"{100 * row['progress'] / total:.0f}%{eta}"


@app.command("status")
def status(
    store: StoreOption = None,
    study: Annotated[str | None, typer.Option(help="Only this study's jobs.")] = None,
    state: Annotated[str | None, typer.Option("--state",
                                              help="Only jobs in this state: queued, running, done, failed, "
                                                   "cancelled or blocked.")] = None,
    show_all: Annotated[bool, typer.Option("--all", "-a", help="Also list done jobs.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show the engine, the queue's counts and its jobs in queue order (running first, as xaug-tui lists them).

    Example: xaug status --study quickstart --json | jq '.jobs[] | select(.state == "failed")'
    """
    from xaug.store.jobs import is_paused, list_jobs, load_engine, load_gpu_stats

    db = open_existing_store(store)
    rows = list_jobs(db, study=study, status=state, order="queue")  # the order xaug-tui shows
    counts: dict[str, int] = {}
    for row in rows:
        counts[_job_state(row)] = counts.get(_job_state(row), 0) + 1
    if as_json:
        engine = load_engine(db)
        if engine is not None:
            engine["alive"] = engine_alive(engine)
        print(json.dumps({"engine": engine, "paused": is_paused(db), "counts": counts,
                          "gpus": load_gpu_stats(db), "jobs": [_job_json(r) for r in rows]}, default=str))
        return
    console.print(engine_line(db))
    console.print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no jobs")
    shown = [r for r in rows if show_all or state or r["status"] != "done"]
    if not shown:
        return
    table = Table(box=None, header_style="bold")
    slurm = any(r.get("slurm_job_id") for r in shown)  # a column for the Slurm job only when Slurm ran some
    columns = ("key", "state", "kind", "label", "prio", "progress", "try", "gpus") + (("slurm",) if slurm else ())
    for column in columns + ("message / error",):
        table.add_column(column, overflow="fold" if column in ("label", "message / error") else "ellipsis",
                         no_wrap=column in ("key", "state", "prio", "try", "progress", "slurm"))
    for row in shown[:500]:
        note = row["error"] if row["status"] == "failed" else (
            f"waits on failed {row['blocked_by'][:12]}" if row["blocked_by"] else row["message"] or "")
        slurm_cell = (f"{row['slurm_job_id'] or ''} {row['slurm_state'] or ''}".strip(),) if slurm else ()
        table.add_row(row["key"][:10], _job_state(row), row["kind"], row["label"], str(row["priority"]),
                      _fmt_progress(row), f"{row['attempts']}/{row['max_attempts']}", row["gpus"] or "",
                      *slurm_cell, note)
    console.print(table)
    if len(shown) > 500:
        console.print(f"... {len(shown) - 500} more (use --json)")


@app.command("cancel")
def cancel(
    key: Annotated[str | None, typer.Argument(help="Job key or a unique prefix of it.")] = None,
    study: Annotated[str | None, typer.Option(help="Cancel every unfinished job of this study instead.")] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job (a running one checkpoints and stops), or all unfinished jobs of a study.

    Example: xaug cancel 3fa2c1 ; xaug cancel --study quickstart
    """
    from xaug.store.jobs import cancel_job, list_jobs

    db = open_existing_store(store)
    if (key is None) == (study is None):
        raise EngineError("give either a job KEY or --study NAME to cancel")
    keys = [resolve_key(db, key)] if key else [r["key"] for r in list_jobs(db, study=study)
                                               if r["status"] in ("queued", "blocked", "running")]
    outcome = {k: cancel_job(db, k) for k in keys}
    if as_json:
        print(json.dumps(outcome))
        return
    for k, what in outcome.items():
        console.print(f"{k[:12]}: {what.replace('_', ' ')}")
    if not outcome:
        console.print("nothing to cancel")


@app.command("retry")
def retry(
    key: Annotated[str | None, typer.Argument(help="Job key or a unique prefix of it.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Retry every failed job (of --study if given).")] = False,
    study: Annotated[str | None, typer.Option(help="With --failed: only this study.")] = None,
    store: StoreOption = None,
) -> None:
    """Queue a failed or cancelled job again, with its attempts reset.

    Example: xaug retry 3fa2c1 ; xaug retry --failed --study quickstart
    """
    from xaug.store.jobs import list_jobs, load_job, retry_job

    db = open_existing_store(store)
    if key is None and not failed:
        raise EngineError("give a job KEY, or --failed to retry every failed job")
    keys = [resolve_key(db, key)] if key else [r["key"] for r in list_jobs(db, study=study, status="failed")]
    for k in keys:
        if retry_job(db, k):
            console.print(f"{k[:12]}: queued again")
        else:
            console.print(f"{k[:12]}: is {load_job(db, k)['status']}; only failed or cancelled jobs can be retried")


@app.command("priority")
def priority(
    key: Annotated[str, typer.Argument(help="Job key or a unique prefix of it.")],
    value: Annotated[int, typer.Argument(help="New priority; higher runs first (default 0).")],
    store: StoreOption = None,
) -> None:
    """Set a job's priority (among runnable jobs the highest starts first, then the oldest).

    Example: xaug priority 3fa2c1 10
    """
    from xaug.store.jobs import set_job_priority

    db = open_existing_store(store)
    full = resolve_key(db, key)
    set_job_priority(db, full, value)
    console.print(f"{full[:12]}: priority {value}")


@app.command("logs")
def logs(
    key: Annotated[str, typer.Argument(help="Job key or a unique prefix of it.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing while the job runs.")] = False,
    store: StoreOption = None,
) -> None:
    """Print a job's worker log (stdout and stderr of every attempt).

    Example: xaug logs 3fa2c1 --follow
    """
    from xaug.store.jobs import load_job

    db = open_existing_store(store)
    full = resolve_key(db, key)
    job = load_job(db, full)
    if not job["log_path"]:
        raise EngineError(f"job {full[:12]} ({job['label']}) has not started yet, so it has no log")
    path = Path(job["log_path"])
    if not path.exists():
        raise EngineError(f"the log of job {full[:12]} should be at {path} but is missing")
    with path.open("r", errors="replace") as handle:
        typer.echo(handle.read(), nl=False)
        while follow:
            chunk = handle.read()
            if chunk:
                typer.echo(chunk, nl=False)
                continue
            if load_job(db, full)["status"] != "running":
                typer.echo(handle.read(), nl=False)
                break
            time.sleep(0.5)


@app.command("pause")
def pause(store: StoreOption = None) -> None:
    """Pause the queue: no new job starts; running jobs continue.

    Example: xaug pause
    """
    from xaug.store.jobs import set_paused

    set_paused(open_existing_store(store), True)
    console.print("queue paused (resume with `xaug resume`)")


@app.command("resume")
def resume(store: StoreOption = None) -> None:
    """Resume a paused queue.

    Example: xaug resume
    """
    from xaug.store.jobs import set_paused

    set_paused(open_existing_store(store), False)
    console.print("queue resumed")


@bench_app.command("engine")
def bench_engine(
    real_jobs: Annotated[int, typer.Option(help="Copies of a real evaluate job run per worker start method "
                                                "(fresh process vs fork server); 0 skips it.")] = 4,
    jobs: Annotated[int, typer.Option(help="No-op jobs dispatched to measure the per-job overhead.")] = 20,
    slots: Annotated[int, typer.Option(help="CPU slots used for the dispatch run.")] = 1,
    plan_size: Annotated[int, typer.Option(help="Approximate number of jobs of the planned study.")] = 10_000,
    study_store: Annotated[str | None, typer.Option(help="A store with a finished study: report the engine's "
                                                         "overhead relative to its job time.")] = None,
    study: Annotated[str | None, typer.Option(help="The study in --study-store (default: the newest).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Measure the engine's overhead: a real evaluate job's start-up cost with fresh vs forked workers (as a ratio
    to its own work), dispatch latency per no-op job, planning and enqueueing a ~10,000-job study.

    Example: xaug bench engine --real-jobs 4 --jobs 20 --study-store runs/quickstart.db
    """
    from xaug.engine.bench.engine_bench import render_table, run_engine_bench

    report = run_engine_bench(n_jobs=jobs, slots=slots, plan_size=plan_size, study_store=study_store, study=study,
                              real_jobs=real_jobs)
    if as_json:
        print(json.dumps(report, default=str))
    else:
        console.print(render_table(report))
