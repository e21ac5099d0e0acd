"""`xaug run|plan|results`: run a recipe in the foreground, preview its DAG, print its per-class results."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from xaug.engine.cli import app, default_store
from xaug.store.errors import EngineError

console = Console()

StoreOption = Annotated[str | None, typer.Option("--store", "-s", help="Study database ($XAUG_STORE or ./xaug.db).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("plan")
def plan(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    store: StoreOption = None,
    show_jobs: Annotated[bool, typer.Option("--jobs", help="List every job with its key and dependencies.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Print the study's DAG (jobs per kind) and which jobs the store already has done and would reuse.

    Example: xaug plan recipes/paper.yaml --store runs/paper.db
    """
    from xaug.engine.planner import KIND_ORDER, plan_study
    from xaug.engine.queue.engine import ensure_own_store
    from xaug.engine.recipe import check_models, load_recipe
    from xaug.store import open_store
    from xaug.store.jobs import job_statuses

    loaded = load_recipe(recipe)
    check_models(loaded)  # timm's names: imports torch, so not part of loading
    jobs = plan_study(loaded)
    path = ensure_own_store(store or default_store())
    statuses = job_statuses(open_store(path), [j.key for j in jobs]) if path.exists() else {}
    rows: dict[str, dict[str, int]] = {}
    for job in jobs:
        entry = rows.setdefault(job.kind, {"jobs": 0, "reused": 0, "queued": 0, "new": 0})
        entry["jobs"] += 1
        state = statuses.get(job.key)
        entry["reused" if state == "done" else "new" if state is None else "queued"] += 1
    if as_json:
        print(json.dumps({"study": loaded.recipe.name, "kinds": rows,
                          "jobs": [{"key": j.key, "kind": j.kind, "label": j.label, "deps": list(j.deps),
                                    "gpus_needed": j.gpus_needed, "state": statuses.get(j.key, "new")}
                                   for j in jobs]}))
        return
    table = Table(title=f"study {loaded.recipe.name}: {len(jobs)} jobs", box=None, header_style="bold")
    for column in ("kind", "jobs", "reused (done)", "in queue", "new"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind in sorted(rows, key=lambda k: KIND_ORDER.index(k) if k in KIND_ORDER else 99):
        r = rows[kind]
        table.add_row(kind, str(r["jobs"]), str(r["reused"]), str(r["queued"]), str(r["new"]))
    console.print(table)
    if show_jobs:
        for job in jobs:
            deps = " ".join(d[:8] for d in job.deps[:6]) + (" ..." if len(job.deps) > 6 else "")
            console.print(f"{job.key[:12]} {statuses.get(job.key, 'new'):>9}  {job.label}  [dim]<- {deps}[/]")


class _Display:
    """Rich progress: one bar for the study, one per running job with its message and ETA."""

    def __init__(self, progress: Progress, study: str) -> None:
        self.progress = progress
        self.study = study
        self.overall = progress.add_task(f"[bold]{study}", total=1, info="")
        self.tasks: dict[str, int] = {}
        self._last = 0.0

    def update(self, db, force: bool = False) -> None:
        from xaug.store.jobs import list_jobs

        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        rows = list_jobs(db, study=self.study)
        done = sum(1 for r in rows if r["status"] in ("done", "failed", "cancelled", "blocked"))
        failed = sum(1 for r in rows if r["status"] == "failed")
        note = f" [red]{failed} failed[/]" if failed else ""
        self.progress.update(self.overall, total=len(rows), completed=done,
                             description=f"[bold]{self.study}[/]{note}", info="")
        running = {r["key"]: r for r in rows if r["status"] == "running"}
        for key in list(self.tasks):
            if key not in running:
                self.progress.remove_task(self.tasks.pop(key))
        for key, row in running.items():
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(f"  {row['label']}", total=None, info="")
            total = row["progress_total"] or None
            eta = f"eta {row['eta_s']:.0f}s" if row.get("eta_s") else ""
            self.progress.update(self.tasks[key], total=total, completed=row["progress"] or 0,
                                 info=f"{row['message'] or ''} {eta}".strip())


@app.command("run")
def run(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    store: StoreOption = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Jobs run at once on the CPU (default: one per "
                                             "core, at most 4; each gets cores/jobs threads).")] = None,
    gpus: Annotated[str | None, typer.Option(help="GPU indices to use, e.g. 0,1, or 'none' (default: all).")] = None,
    grace: Annotated[float, typer.Option(help="Seconds a job gets to checkpoint on Ctrl-C.")] = 60.0,
) -> None:
    """Submit a recipe and run its study here in the foreground, with progress bars, then summarise the results.

    Jobs already done in the store are reused; Ctrl-C checkpoints running jobs and a second `xaug run` resumes.
    If an engine already serves the store, this submits and watches it instead.

    Example: xaug run recipes/quickstart.yaml --store runs/quickstart.db
    """
    from xaug.engine.daemon import parse_gpus
    from xaug.engine.queue.engine import Engine
    from xaug.engine.queue.submit import preflight, submit_recipe
    from xaug.engine.recipe import load_recipe
    from xaug.store import open_store
    from xaug.store.jobs import is_paused, study_finished

    loaded = load_recipe(recipe)
    preflight(loaded)  # before the store is opened: a bad recipe leaves none behind
    name = loaded.recipe.name
    # Small CPU models use one core far better than two: one job per core beats one job with many threads.
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    if loaded.recipe.resources.executor == "slurm":
        from xaug.engine.queue.slurm import slurm_engine

        engine = slurm_engine(store or default_store(), max_jobs=loaded.recipe.resources.slurm.max_jobs, grace_s=grace)
    else:
        engine = Engine(store or default_store(), cpu_slots=jobs, gpus=parse_gpus(gpus), grace_s=grace)
    db = open_store(engine.store_path)
    if is_paused(db):
        raise EngineError(f"the queue of {engine.store_path} is paused, so nothing would run: "
                          f"resume it with `xaug resume --store {engine.store_path}`")
    _, counts = submit_recipe(db, loaded, checked=True)
    console.print(f"study [bold]{name}[/]: {counts['jobs']} jobs, {counts['reused']} already done "
                  f"(store {engine.store_path})")
    started = time.monotonic()
    progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("[dim]{task.fields[info]}"), console=console,
                        transient=False)
    display = _Display(progress, name)
    try:
        engine.start()
    except EngineError as exc:
        if "already runs" not in str(exc):
            raise
        console.print("[yellow]an engine already serves this store: watching it[/] (Ctrl-C stops watching only)")
        engine = None
    with progress:
        if engine is None:
            while not study_finished(db, name):
                display.update(db)
                time.sleep(0.5)
        else:
            engine.run(until=lambda: study_finished(db, name), on_step=lambda _: display.update(db))
        display.update(db, force=True)
    elapsed = time.monotonic() - started
    if engine is not None and engine.stopping and not study_finished(db, name):
        if engine.left_running:
            console.print(f"[yellow]interrupted:[/] {len(engine.left_running)} Slurm job(s) run on (`xaug cancel` "
                          "stops them); run the same command again to watch them and resume the rest")
        else:
            console.print("[yellow]interrupted:[/] running jobs checkpointed and are queued; run the same command "
                          "again to resume")
        raise typer.Exit(130)
    _print_summary(db, name, elapsed)


def _print_summary(db, name: str, elapsed: float) -> None:
    from xaug.store.jobs import list_jobs, study_counts
    from xaug.store.results import results_unit, score_table

    counts = study_counts(db, name)
    console.print(f"study [bold]{name}[/] finished in {elapsed:.0f}s: {counts['done']} done, {counts['failed']} "
                  f"failed, {counts['blocked']} blocked, {counts['cancelled']} cancelled")
    scores = score_table(db, name)
    if scores:
        table = Table(title=f"test scores, mean ± SD over units; {results_unit(db, name)}", box=None,
                      header_style="bold")
        for column in ("classifier", "arm", "n", "accuracy", "balanced acc.", "macro F1"):
            table.add_column(column, no_wrap=column not in ("classifier", "arm"))
        for row in scores:
            table.add_row(row["classifier"], row["arm"], str(row.get("n", 0)),
                          *(_pm(row, m) for m in ("accuracy", "balanced_accuracy", "macro_f1")))
        console.print(table)
        console.print(f"per-class precision/recall/F1: xaug results {name}")
    failed = [r for r in list_jobs(db, study=name) if r["status"] == "failed"]
    for row in failed:
        console.print(f"[red]failed[/] {row['key'][:12]} {row['label']}: {row['error']}\n  log: {row['log_path']}")
    if failed:
        raise typer.Exit(1)


def _pm(row: dict, metric: str) -> str:
    if f"{metric}_mean" not in row:
        return "-"
    return f"{row[f'{metric}_mean']:.3f}±{row[f'{metric}_sd']:.3f}"


@app.command("results")
def results(
    study: Annotated[str, typer.Argument(help="Study name (the recipe's `name`).")],
    store: StoreOption = None,
    as_json: JsonOption = False,
    test_set: Annotated[str, typer.Option("--test-set", help="test (the folds' test splits) or external"
                                          " (dataset.external_test).")] = "test",
) -> None:
    """Print per-class precision/recall/F1 per classifier and arm, mean ± SD over replication units (folds x
    repeats, seeds averaged within a fold), read from the study's stored analysis.

    Example: xaug results quickstart --store runs/quickstart.db (or --test-set external)
    """
    from xaug.engine.cli.queue_cmds import open_existing_store
    from xaug.store.results import class_metric_table, results_unit, score_table
    from xaug.store.studies import require_study

    db = open_existing_store(store)
    require_study(db, study)
    if test_set not in ("test", "external"):
        raise EngineError(f"--test-set {test_set!r}: use test (the folds' test splits) or external")
    rows = class_metric_table(db, study, test_set)
    scores = score_table(db, study, test_set)
    unit = results_unit(db, study)
    if as_json:
        print(json.dumps({"study": study, "unit": unit, "test_set": test_set, "classes": rows, "scores": scores}))
        return
    if not rows:
        console.print(f"study {study} has no analysed runs on test set '{test_set}' yet: {unit} (see"
                      f" `xaug status --study {study}`)")
        return
    where = " on the external test set" if test_set == "external" else ""
    table = Table(title=f"{study}: per-class results{where}, mean ± SD over units; {unit}", box=None,
                  header_style="bold")
    for column in ("classifier", "arm", "class", "n", "precision", "recall", "F1"):
        table.add_column(column, no_wrap=column not in ("classifier", "arm"))
    previous = None
    for row in rows:
        group = (row["classifier"], row["arm"])
        if previous is not None and group != previous:
            table.add_section()
        show = group != previous
        previous = group
        table.add_row(row["classifier"] if show else "", row["arm"] if show else "", row["class_name"],
                      str(row["n"]), *(_pm(row, m) for m in ("precision", "recall", "f1")))
    console.print(table)
    if scores:
        overall = Table(title="overall", box=None, header_style="bold")
        for column in ("classifier", "arm", "n", "accuracy", "balanced acc.", "macro F1", "AUROC"):
            overall.add_column(column, no_wrap=column not in ("classifier", "arm"))
        for row in scores:
            overall.add_row(row["classifier"], row["arm"], str(row.get("n", 0)),
                            *(_pm(row, m) for m in ("accuracy", "balanced_accuracy", "macro_f1", "auroc")))
        console.print(overall)
