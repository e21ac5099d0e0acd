"""`xaug weights fetch`: download the pretrained weights a recipe needs, on a machine with internet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from xaug.engine.cli import weights_app
from xaug.engine.recipe import load_recipe

console = Console(soft_wrap=True)


@weights_app.command("fetch")
def fetch(recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")]) -> None:
    """Download every pretrained classifier weight and Stable Diffusion base model the recipe needs into the
    Hugging Face cache ($HF_HUB_CACHE or ~/.cache/huggingface/hub), and Inception's weights (quality.features:
    inception) into torch.hub's (~/.cache/torch/hub/checkpoints); copy those folders to an offline machine.

    Example: xaug weights fetch recipes/paper.yaml
    """
    from xaug.engine.classifiers.registry import hf_cache_dir
    from xaug.engine.weights import check_weights, fetch_weights

    loaded = load_recipe(recipe)
    fetched = fetch_weights(loaded)
    check_weights(loaded)  # what the jobs will find: a download that left something incomplete fails here
    for line in fetched:
        console.print(f"fetched {line}")
    console.print(f"[green]ok[/] {recipe}: {len(fetched)} download(s) (Hugging Face cache {hf_cache_dir()}); every "
                  "weight the recipe needs is available locally")
