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
    """Validate a recipe and report every problem with file, line and key.

    Example: xaug recipe check recipes/quickstart.yaml
    """
    loaded = load_recipe(recipe)
    r = loaded.recipe
    console.print(f"[green]ok[/] {recipe}: study '{r.name}', {len(r.generators)} generators, "
                  f"{len(r.classifiers)} classifiers, {r.splits.folds} folds, seeds {r.seeds}")


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
