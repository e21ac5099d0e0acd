"""`xaug data inspect`: what the loader sees in a recipe's dataset, before anything is queued or decoded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from xaug.engine.cli import data_app

console = Console(soft_wrap=True)


@data_app.command("inspect")
def inspect(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    headers: Annotated[int, typer.Option("--headers", min=1, help="Image headers to read for sizes and modes.")] = 200,
) -> None:
    """Show what the loader sees in a recipe's dataset, before anything runs.

    Classes with image and patient counts (and the subsample's draw), the rows each rule skipped with the first
    examples, images per patient, and image sizes and modes, exactly as prepare_data will load them.

    Example: xaug data inspect my-study.yaml --headers 500
    """
    from xaug.engine.data.inspect import inspect_dataset
    from xaug.engine.recipe import load_recipe

    dataset = load_recipe(recipe).dataset
    seen = inspect_dataset(dataset, max_headers=headers)
    console.print(_classes_table(seen, dataset.source))
    console.print(_skips_table(seen, _image_folder(dataset)))
    histogram = ", ".join(f"{bin_}: {n}" for bin_, n in seen.images_per_patient.items() if n)
    console.print(f"[bold]patients by images per patient[/] (before any subsample)  {histogram}")
    sizes = ", ".join(f"{size} {mode} ({n})" for size, mode, n in seen.geometries[:8])
    more = f" and {len(seen.geometries) - 8} more" if len(seen.geometries) > 8 else ""
    read = f" ({seen.sampled} headers read)" if seen.sampled else ""
    console.print(f"[bold]image sizes and modes[/]{read}  {sizes}{more}")
    for problem in seen.problems:
        console.print(f"[bold red]problem:[/] {problem}", highlight=False)


def _classes_table(seen, source: str) -> Table:
    table = Table(title=f"classes ({source})", box=None, header_style="bold")
    for column in ("class", "images", "patients"):
        table.add_column(column, justify="left" if column == "class" else "right")
    draws = {d.class_name: d for d in seen.draws}
    if draws:
        for column in ("target", "drawn images", "drawn patients"):
            table.add_column(column, justify="right")
    for c in seen.classes:
        row = [c.name, str(c.images), str(c.patients)]
        if draws:
            d = draws[c.name]
            row += [str(d.target), str(d.selected_images), str(d.selected_patients)]
        table.add_row(*row)
    total = [f"all {len(seen.classes)}", str(sum(c.images for c in seen.classes)),
             str(sum(c.patients for c in seen.classes))]
    if draws:
        total += [str(sum(d.target for d in seen.draws)), str(sum(d.selected_images for d in seen.draws)),
                  str(sum(d.selected_patients for d in seen.draws))]
    table.add_row(*total, style="bold")
    if seen.n_external:
        table.caption = f"external test set: {seen.n_external} images not drawn"
    return table


def _image_folder(dataset) -> Path | None:
    """The folder that image paths are shown relative to: the CSV's image root, or the dataset folder."""
    from xaug.engine.data.csvtable import image_root

    if dataset.path is None:
        return None
    return image_root(Path(dataset.path), dataset.csv) if dataset.source == "csv" else Path(dataset.path)


def _short(source: str, folder: Path | None) -> str:
    """A source path relative to the image folder when it lies below it."""
    try:
        return Path(source).relative_to(folder).as_posix() if folder is not None else source
    except ValueError:
        return source


def _skips_table(seen, folder: Path | None) -> Table:
    table = Table(title="skipped rows and files", box=None, header_style="bold")
    table.add_column("rule")
    table.add_column("count", justify="right")
    table.add_column("first examples")
    for skip in seen.skips:
        examples = "\n".join(f"{_short(source, folder)}: {reason.removeprefix(skip.rule + ': ')}"
                             for source, reason in skip.examples)
        table.add_row(skip.rule, str(skip.count), examples)
    if not seen.skips:
        table.add_row("-", "0", "nothing skipped")
    return table
