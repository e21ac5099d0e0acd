"""`xaug-engine`: the headless engine. Run it in tmux or as a systemd user service; submit with `xaug submit`.

Example: xaug-engine --store runs/study.db --cpu-slots 2
On a Slurm login node: xaug-engine --store /shared/runs/study.db --executor slurm --max-jobs 200
SIGTERM (systemctl stop, kill) checkpoints the running jobs, requeues them and exits with status 0; with
--executor slurm it leaves the Slurm jobs running, and the next xaug-engine on the store watches them again.
"""

from __future__ import annotations

import argparse
import logging
import sys


def parse_gpus(text: str | None) -> list[int] | None:
    """'0,1' -> [0, 1]; 'none' -> []; None -> detect."""
    if text is None:
        return None
    if text.strip().lower() in ("", "none", "cpu"):
        return []
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> None:
    """Entry point of xaug-engine: run the engine on a store until SIGTERM."""
    from xaug.engine.cli import default_store
    from xaug.engine.errors import XaugError
    from xaug.engine.queue.engine import Engine

    parser = argparse.ArgumentParser(
        prog="xaug-engine",
        description="Run the xaug job queue of a store on this machine's GPUs (or CPU slots) until SIGTERM.",
        epilog="Example: xaug-engine --store runs/study.db --cpu-slots 2",
    )
    parser.add_argument("--store", default=default_store(), help="Study database (default: $XAUG_STORE or ./xaug.db).")
    parser.add_argument("--cpu-slots", type=int, default=1, help="Jobs run at once on the CPU (default 1).")
    parser.add_argument("--gpus", default=None, help="GPU indices to use, e.g. 0,1, or 'none' (default: all found).")
    parser.add_argument("--poll", type=float, default=0.5, help="Seconds between scheduler passes (default 0.5).")
    parser.add_argument("--grace", type=float, default=60.0,
                        help="Seconds a job gets to checkpoint after SIGTERM before it is killed (default 60).")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local",
                        help="local: run jobs here; slurm: submit them to Slurm (the store's folder must be shared "
                             "with the compute nodes).")
    parser.add_argument("--max-jobs", type=int, default=64,
                        help="With --executor slurm: jobs submitted at once (default 64).")
    parser.add_argument("--quiet", action="store_true", help="Log only warnings.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.executor == "slurm":
            from xaug.engine.queue.slurm import slurm_engine

            engine = slurm_engine(args.store, max_jobs=args.max_jobs, poll_s=args.poll, grace_s=args.grace)
        else:
            engine = Engine(args.store, cpu_slots=args.cpu_slots, gpus=parse_gpus(args.gpus), poll_s=args.poll,
                            grace_s=args.grace)
        engine.start()
        engine.run()
    except XaugError as exc:
        print(f"xaug-engine: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(0)


if __name__ == "__main__":
    main()
