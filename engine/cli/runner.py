"""The one place where a command line ends: a user error becomes one line on stderr and exit status 2.

`xaug`, `xaug-engine` and `xaug-tui` run their typer app through `run_cli`, so every user-fixable problem (an
`XaugError`, a wrong option, a store that fails mid-command) reads the same: `PROG: error: what was wrong; what to
do`, never a traceback. Anything else is a bug in xaug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from xaug.store.errors import XaugError


def _typer_error_class(name: str) -> type[Exception]:
    """The click exception class `name` that typer raises: recent typer vendors click (as typer._click), older
    typer raised click's own, so take it from the ancestry of `typer.BadParameter` rather than importing click."""
    return next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == name)


_ClickException = _typer_error_class("ClickException")
_UsageError = _typer_error_class("UsageError")

EXIT_USER_ERROR = 2
"""A problem the user can fix (bad input, a wrong option, a missing file or store): as click's usage errors."""
EXIT_INTERRUPTED = 130

err_console = Console(stderr=True, soft_wrap=True, highlight=False)


def run_cli(app: typer.Typer, prog: str, argv: list[str] | None = None) -> NoReturn:
    """Run `app` on `argv` (default: sys.argv) and exit: 0 on success, 2 with one line for a user error."""
    from xaug.store.db import store_errors

    try:
        with store_errors():  # a store that fails after it was opened (disk full, made read-only) is one line too
            result = app(args=argv, prog_name=prog, standalone_mode=False)
    except XaugError as exc:
        user_error(prog, str(exc))
    except _UsageError as exc:  # a missing argument or a bad option value: the usage is one --help away
        if type(exc).__name__ == "NoArgsIsHelpError":  # `xaug` alone, `xaug recipe`: the help is the answer
            exc.show()
            sys.exit(exc.exit_code)
        command = exc.ctx.command_path if exc.ctx else prog
        user_error(prog, f"{exc.format_message()} (see `{command} --help`)")
    except _ClickException as exc:  # e.g. a file option that does not exist
        user_error(prog, exc.format_message(), exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    # typer.Exit arrives as its code in non-standalone mode
    sys.exit(result if isinstance(result, int) else 0)


def exit_code(app: typer.Typer, prog: str, argv: list[str] | None = None) -> int:
    """`run_cli`, returning its exit status instead of exiting: for the worker entry points, which leave through
    their own fast exit."""
    try:
        run_cli(app, prog, argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def user_error(prog: str, message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    """Print `PROG: error: message` on stderr, markup-safe, and exit with `code`."""
    err_console.print(f"{prog}: [bold red]error:[/] {escape(message)}")
    sys.exit(code)
