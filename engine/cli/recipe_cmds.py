"""`xaug recipe check|schema`: validate recipes and export the JSON schema for editors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from xaug.engine.cli import recipe_app
from xaug.engine.recipe import load_recipe, recipe_json_schema

console = Console(soft_wrap=True)


@recipe_app.command("check")
def check(recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")]) -> None:
    """Validate a recipe and report every problem with file, line and key; list a file dataset's classes with
    their image and patient counts, and check that every pretrained weight it needs is available locally.

    Example: xaug recipe check recipes/quickstart.yaml
    """
    from xaug.engine.queue.submit import preflight

    loaded = load_recipe(recipe)
    records = preflight(loaded)  # the checks a submit runs, no more and no less
    r = loaded.recipe
    if r.dataset.source != "phantom":
        _print_classes(loaded, records)
    console.print(f"[green]ok[/] {recipe}: study '{r.name}', {len(r.generators)} generators, "
                  f"{len(r.classifiers)} classifiers, {r.splits.folds} folds, seeds {r.seeds}")


def _print_classes(loaded, records) -> None:
    """The classes a file dataset's loader found, with image and patient counts (an empty class fails to load)."""
    from rich.table import Table

    from xaug.engine.data.inspect import class_counts

    table = Table("class", "images", "patients", title=f"dataset {loaded.dataset.path}")
    for count in class_counts(records):
        table.add_row(count.name, str(count.images), str(count.patients))
    console.print(table)
    if records.skipped:
        console.print(f"{len(records.skipped)} row(s) or file(s) skipped, e.g. {records.skipped[0][0]}:"
                      f" {records.skipped[0][1]}; `xaug data inspect` lists them by rule")


@recipe_app.command("schema")
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON schema of recipes (for yaml-language-server autocompletion).

    Example: xaug recipe schema -o xaug-recipe.schema.json
    """
    text = json.dumps(recipe_json_schema(), indent=2)
    if output:
        output.write_text(text + "\n")
        console.print(f"wrote {output}")
    else:
        print(text)
