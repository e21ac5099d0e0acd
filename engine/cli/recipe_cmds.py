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
    from xaug.engine.weights import check_weights

    loaded = load_recipe(recipe)
    r = loaded.recipe
    if r.dataset.source != "phantom":
        _print_classes(loaded)
    check_weights(loaded)
    console.print(f"[green]ok[/] {recipe}: study '{r.name}', {len(r.generators)} generators, "
                  f"{len(r.classifiers)} classifiers, {r.splits.folds} folds, seeds {r.seeds}")


def _print_classes(loaded) -> None:
    """The classes a file dataset's loader finds, with image and patient counts (an empty class fails to load)."""
    from rich.table import Table

    from xaug.engine.data.sources import load_records

    dataset = loaded.recipe.dataset
    records = load_records(dataset.model_copy(update={"path": str(loaded.resolve(dataset.path))}))
    table = Table("class", "images", "patients", title=f"dataset {loaded.resolve(dataset.path)}")
    for name in records.classes:
        members = [r for r in records.records if r.label == name]
        table.add_row(name, str(len(members)), str(len({r.patient_id for r in members})))
    console.print(table)
    if records.skipped:
        console.print(f"{len(records.skipped)} file(s) skipped (dataset.on_unreadable: skip), e.g. "
                      f"{records.skipped[0][0]}: {records.skipped[0][1]}")


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
