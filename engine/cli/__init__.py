"""The `xaug` command line: thin wrappers over the Python API, one module per group of commands."""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console

from xaug.engine.errors import XaugError

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

err_console = Console(stderr=True, soft_wrap=True)

DEFAULT_STORE = "xaug.db"


def default_store() -> str:
    """The store used when --store is not given: $XAUG_STORE, else ./xaug.db."""
    return os.environ.get("XAUG_STORE", DEFAULT_STORE)


def load_commands() -> typer.Typer:
    """Import every command module so that its commands are registered; returns the app."""
    for module in _COMMAND_MODULES:
        importlib.import_module(module)
    return app


def main() -> None:
    """Entry point of `xaug`: a user error is printed once, without a traceback, and exits with status 2."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    load_commands()
    from xaug.store.db import store_errors

    try:
        with store_errors():  # a store that fails after it was opened (disk full, made read-only) is one line too
            app(standalone_mode=False)
    except XaugError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        sys.exit(2)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
