"""`xaug bench generators`: training and sampling speed of each generator, xaug's settings vs a naive reference;
`xaug bench gpu`: every model at full size on a GPU against the diffusers example-script settings, and jobs per GPU;
`xaug bench tui`: how fast the TUI shows a 10,000-job queue and a change of 100 jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from xaug.engine.cli import bench_app


def print_rows(title: str, rows: list[dict]) -> None:
    """Print benchmark rows (name, metric, xaug, reference, ratio) as a table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("benchmark", "metric", "xaug", "reference", "ratio"):
        table.add_column(column, justify="left" if column in ("benchmark", "metric") else "right")
    for row in rows:
        table.add_row(row["name"], row["metric"], f"{row['xaug']:.3g}", f"{row['reference']:.3g}",
                      f"{row['ratio']:.2f}x")
    Console(width=140).print(table)


@bench_app.command("gpu")
def bench_gpu(
    smoke: Annotated[bool, typer.Option("--smoke", help="Tiny sizes on the CPU: a format check, no GPU.")] = False,
    section: Annotated[list[str] | None, typer.Option(help="Sections to run: sd, classifier, packing, ddpm, gan "
                                                           "(repeatable; default all).")] = None,
    jobs_per_gpu: Annotated[int | None, typer.Option(min=2, help="k of the packing section (default 4).")] = None,
    compile: Annotated[bool, typer.Option("--compile/--no-compile", help="Add torch.compile arms.")] = False,
    max_minutes: Annotated[float, typer.Option(help="Skip sections whose time budget no longer fits.")] = 8.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write rows and timings to this file.")] = None,
) -> None:
    """Full-size SD-1.5, GAN, DDPM and classifiers with random weights: xaug's settings vs the diffusers
    example-script settings (training it/s, sampling images/s, peak memory, ratios), and classifier runs per hour
    with 1 vs k jobs per GPU.

    Example: xaug bench gpu --json bench-gpu.json     (on a GPU machine; `--smoke` on a CPU)
    """
    from xaug.engine.bench.generators_bench import device_name
    from xaug.engine.bench.gpu_bench import SECTION_NAMES, gpu_bench

    where = device_name("cpu" if smoke else "auto")

    def save(result) -> None:
        if json_out is not None:
            json_out.write_text(json.dumps({"device": where, "smoke": smoke, "rows": result.rows,
                                            "seconds": result.seconds, "skipped": result.skipped,
                                            "failed": result.failed}, indent=1))

    result = gpu_bench(smoke=smoke, sections=tuple(section or SECTION_NAMES), jobs_per_gpu=jobs_per_gpu,
                       compile=compile, max_minutes=max_minutes, on_section=save)
    save(result)
    print_rows(f"xaug bench gpu{' --smoke' if smoke else ''} on {where}: xaug settings vs example-script settings",
               result.rows)
    timings = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result.seconds.items())
    skipped = f"; skipped for time: {', '.join(result.skipped)}" if result.skipped else ""
    typer.echo(f"sections: {timings}{skipped}")
    for name, error in result.failed.items():
        typer.echo(f"section {name} failed: {error}", err=True)
    if result.failed:
        raise typer.Exit(1)


@bench_app.command("generators")
def bench_generators(
    resolution: Annotated[int, typer.Option(help="Image side in pixels for the GAN and the DDPM.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    steps: Annotated[int, typer.Option(help="Timed training steps per arm (after 2 warm-up steps).")] = 10,
    compile: Annotated[bool, typer.Option("--compile/--no-compile", help="torch.compile xaug's arm (GPU).")] = False,
    model: Annotated[list[str] | None, typer.Option(help="Generators to measure: gan, ddpm, sd (repeatable).")] = None,
    sd_resolution: Annotated[int | None, typer.Option(help="Side for Stable Diffusion (default: 512 on GPU).")] = None,
    reference_steps: Annotated[int, typer.Option(help="DDPM sampling steps of the reference (the paper: 250).")] = 250,
) -> None:
    """Print training and sampling images/s per generator for xaug's settings and the naive reference, with ratios.

    Example: xaug bench generators --resolution 256 --device cuda --compile
    """
    from xaug.engine.bench.generators_bench import device_name, generator_rows

    if device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter(f"device must be auto, cpu or cuda, not '{device}'")
    models = tuple(model or ("gan", "ddpm", "sd"))
    unknown = sorted(set(models) - {"gan", "ddpm", "sd"})
    if unknown:
        raise typer.BadParameter(f"unknown model(s) {', '.join(unknown)}; choose from gan, ddpm, sd")
    rows = generator_rows(device=device, resolution=resolution, steps=steps, compile=compile, models=models,
                          sd_resolution=sd_resolution, reference_sample_steps=reference_steps)
    print_rows(f"xaug generators on {device_name(device)}: xaug settings vs naive reference", rows)


@bench_app.command("tui")
def bench_tui(
    jobs: Annotated[int, typer.Option(help="Jobs in the queue.")] = 10_000,
    changed: Annotated[int, typer.Option(help="Running jobs whose progress changes at once.")] = 100,
    before: Annotated[Path | None, typer.Option(
        help="Another xaug source tree to measure the same way, side by side "
             "(e.g. `git archive main | tar -x -C /tmp/xaug-main`).")] = None,
) -> None:
    """Print the TUI's first useful paint with JOBS jobs, the time until all are listed, a key press, and how long
    a progress change of CHANGED jobs takes to show (headless, Textual's Pilot, 160x48; store polled every 0.1 s).

    Example: xaug bench tui --jobs 10000 --before /tmp/xaug-main
    """
    from rich.console import Console
    from rich.table import Table

    from xaug.engine.bench.tui_bench import measure, measure_tree

    if jobs < changed or changed < 1:
        raise typer.BadParameter(f"need 1 <= --changed <= --jobs, got {changed} and {jobs}")
    runs = {}
    if before is not None:
        runs[f"before ({before})"] = measure_tree(before, jobs, changed)
    runs["this xaug"] = measure(jobs, changed)
    table = Table(title=f"xaug-tui with {jobs:,} jobs (headless 160x48)")
    table.add_column("figure")
    for name in runs:
        table.add_column(name, justify="right")
    for label, key in (("first useful paint", "first_paint_s"), ("every job listed", "all_rows_s"),
                       ("key press (cursor down)", "key_press_s"), (f"{changed}-job change shown", "change_shown_s")):
        table.add_row(label, *[f"{run[key] * 1000:.0f} ms" for run in runs.values()])
    for label, key in (("  of which: read (worker)", "read_s"), ("  of which: shown (UI thread)", "apply_s")):
        table.add_row(label, *["" if run.get(key) is None else f"{run[key] * 1000:.0f} ms" for run in runs.values()])
    Console().print(table)
