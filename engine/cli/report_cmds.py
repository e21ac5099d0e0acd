"""`xaug report STUDY`: tables (CSV, Markdown, LaTeX) and figures (PNG) of a study, and its key table printed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from xaug.engine.cli import app

console = Console()


@app.command("report")
def report(
    study: Annotated[str, typer.Argument(help="Study name (the recipe's `name`).")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder to write into; default reports/STUDY.")] = None,
    store: Annotated[str | None, typer.Option(
        "--store", "-s", help="Study database; default $XAUG_STORE or ./xaug.db.")] = None,
) -> None:
    """Write a study's comparison, per-class F1, quality and correlation tables and its figures into a folder.

    Example: xaug report quickstart --out reports/quickstart
    """
    from xaug.engine.analysis.report import build_report
    from xaug.engine.cli.queue_cmds import open_existing_store

    db = open_existing_store(store)
    out_dir = out or Path("reports") / study
    result = build_report(db, study, out_dir)
    ci = f"{(1 - result.alpha) * 100:.0f}% CI"
    console.print(_key_table(f"{study}: change vs baseline / duplicate control (pp, {ci}); {result.unit}",
                             result.key_rows))
    console.print(_rows_table(f"headline: per generator, averaged over classifiers and common amounts; "
                              f"{result.unit}", result.effect_rows,
                              ("generator", "reference", "metric", "n", "Δ (pp)", ci, "p_adj")))
    if result.power_rows:
        console.print(_rows_table(f"power: repeats (units) for 80% power, accuracy vs baseline; {result.unit}",
                                  result.power_rows, [c for c in result.power_rows[0] if c != "unit"]))
    console.print(result.note, style="dim")
    console.print(f"wrote {len(result.files)} files to {out_dir}")


KEY_COLUMNS = {  # header shown -> column of the comparison matrix (short headers fit an 80-column terminal)
    "generator": "generator", "classifier": "classifier", "+/class": "amount", "n units": "n",
    "Δacc vs baseline [CI]": "Δacc vs baseline", "p adj": "p_adj",
    "Δacc vs duplicate [CI]": "Δacc vs duplicate", "p adj (dup)": "p_adj (dup)",
}


def _key_table(title: str, rows: list[dict]) -> Table:
    """The comparison matrix's accuracy columns as a rich table (every metric is in the written files)."""
    table = Table(title=title, title_justify="left")
    for header, column in KEY_COLUMNS.items():
        text = header in ("generator", "classifier")
        widest = max((len(str(row.get(column, ""))) for row in rows), default=0) if text else None
        table.add_column(header, justify="left" if text else "right", overflow="fold",
                         min_width=None if widest is None else min(widest, 14))
    for row in rows:
        table.add_row(*[str(row.get(column, "")) for column in KEY_COLUMNS.values()])
    return table


def _rows_table(title: str, rows: list[dict], columns) -> Table:
    """Some columns of a report table as a rich table."""
    table = Table(title=title, title_justify="left")
    for name in columns:
        table.add_column(name)
    for row in rows:
        table.add_row(*[str(row.get(name, "")) for name in columns])
    return table
