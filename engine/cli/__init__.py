"""The `xaug` command line: thin wrappers over the Python API, one module per group of commands."""

from __future__ import annotations

import importlib
import os

import typer

app = typer.Typer(
    name="xaug",
    no_args_is_help=True,
    add_completion=False,
    help="Does synthetic data from a generative model help your classifier? Run and inspect xaug studies.",
    pretty_exceptions_enable=False,
)
recipe_app = typer.Typer(no_args_is_help=True, help="Check recipes and export their JSON schema.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print speed ratios measured side by side.")
weights_app = typer.Typer(no_args_is_help=True, help="Pretrained weights a recipe needs: fetch them beforehand.")
data_app = typer.Typer(no_args_is_help=True, help="Look at a recipe's dataset the way the loader sees it.")
app.add_typer(recipe_app, name="recipe")
app.add_typer(bench_app, name="bench")
app.add_typer(weights_app, name="weights")
app.add_typer(data_app, name="data")

# Each module adds its commands to `app` (or a sub-app above) when imported.
_COMMAND_MODULES = [
    "xaug.engine.cli.recipe_cmds",
    "xaug.engine.cli.run_cmds",
    "xaug.engine.cli.queue_cmds",
    "xaug.engine.cli.report_cmds",
    "xaug.engine.cli.power_cmds",
    "xaug.engine.cli.bench_cmds",
    "xaug.engine.cli.weights_cmds",
    "xaug.engine.cli.data_cmds",
]

DEFAULT_STORE = "xaug.db"


def default_store() -> str:
    """The store used when --store is not given: $XAUG_STORE, else ./xaug.db."""
    return os.environ.get("XAUG_STORE", DEFAULT_STORE)


def load_commands() -> typer.Typer:
    """Import every command module so that its commands are registered; returns the app."""
    for module in _COMMAND_MODULES:
        importlib.import_module(module)
    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of `xaug`: a user error is printed once, without a traceback, and exits with status 2."""
    from xaug.engine.cli.runner import run_cli

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    run_cli(load_commands(), "xaug", argv)
