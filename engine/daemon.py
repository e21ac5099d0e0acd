"""`xaug-engine`: the headless engine. Run it in tmux or as a systemd user service; submit with `xaug submit`.

Example: xaug-engine --store runs/study.db --cpu-slots 2
On a Slurm login node: xaug-engine --store /shared/runs/study.db --executor slurm --max-jobs 200
SIGTERM (systemctl stop, kill) checkpoints the running jobs, requeues them and exits with status 0; with
--executor slurm it leaves the Slurm jobs running, and the next xaug-engine on the store watches them again.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


class Executor(str, Enum):
    """Where the engine runs its jobs."""

    local = "local"
    slurm = "slurm"


def parse_gpus(text: str | None) -> list[int] | None:
    """'0,1' -> [0, 1]; 'none' -> []; None -> detect."""
    if text is None:
        return None
    if text.strip().lower() in ("", "none", "cpu"):
        return []
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not a list of GPU indices: use e.g. 0,1 or none") from None


@app.command()
def serve(
    store: Annotated[str | None, typer.Option(help="Study database (default: $XAUG_STORE or ./xaug.db).")] = None,
    cpu_slots: Annotated[int, typer.Option(help="Jobs run at once on the CPU.")] = 1,
    gpus: Annotated[str | None, typer.Option(help="GPU indices to use, e.g. 0,1, or 'none' (default: all found).")]
    = None,
    poll: Annotated[float, typer.Option(help="Seconds between scheduler passes.")] = 0.5,
    grace: Annotated[float, typer.Option(help="Seconds a job gets to checkpoint after SIGTERM before it is killed.")]
    = 60.0,
    executor: Annotated[Executor, typer.Option(
        help="local: run jobs here; slurm: submit them to Slurm (the store's folder must be shared with the compute "
             "nodes).")] = Executor.local,
    max_jobs: Annotated[int, typer.Option(help="With --executor slurm: jobs submitted at once.")] = 64,
    quiet: Annotated[bool, typer.Option("--quiet", help="Log only warnings.")] = False,
) -> None:
    """Run the xaug job queue of a store on this machine's GPUs (or CPU slots) until SIGTERM.

    Example: xaug-engine --store runs/study.db --cpu-slots 2
    """
    from xaug.engine.cli import default_store
    from xaug.engine.queue.engine import Engine

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    store = store or default_store()
    if executor is Executor.slurm:
        from xaug.engine.queue.slurm import slurm_engine

        engine = slurm_engine(store, max_jobs=max_jobs, poll_s=poll, grace_s=grace)
    else:
        engine = Engine(store, cpu_slots=cpu_slots, gpus=parse_gpus(gpus), poll_s=poll, grace_s=grace)
    engine.run()  # starts it, with SIGTERM/SIGINT already handled


def main(argv: list[str] | None = None) -> None:
    """Entry point of xaug-engine: run the engine on a store until SIGTERM; a user error is one line, status 2."""
    from xaug.engine.cli.runner import run_cli

    run_cli(app, "xaug-engine", argv)


if __name__ == "__main__":
    main()
