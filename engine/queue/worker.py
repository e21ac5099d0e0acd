"""The worker: runs one job in its own process (`python -m xaug.engine.queue.worker --store DB --job KEY`).

It builds the job's `JobContext`, calls the job kind's `run(ctx)` and records the outcome: done; failed (the last
line of the traceback as the job's error, the whole traceback in the log; retried only when the failure may heal,
see `xaug.engine.errors.is_permanent`); or, when the job checkpointed and
raised `JobInterrupted` (SIGTERM from the engine, or a cancel request), queued again to resume later without
counting an attempt, or cancelled if a cancel was requested.

Extra job kinds (tests, benchmarks) can be named in `XAUG_EXTRA_JOB_KINDS` as `kind=module,kind2=module2`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 3
EXIT_NOT_RUNNING = 4


def register_extra_kinds(spec: str | None = None) -> dict[str, str]:
    """Add job kinds named in `spec` (default: $XAUG_EXTRA_JOB_KINDS, 'kind=module,...') to the job registry."""
    from xaug.engine.jobs import JOB_KINDS

    spec = os.environ.get("XAUG_EXTRA_JOB_KINDS", "") if spec is None else spec
    added = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kind, _, module = item.partition("=")
        if not module:
            raise SystemExit(f"XAUG_EXTRA_JOB_KINDS: '{item}' is not kind=module")
        added[kind.strip()] = module.strip()
    JOB_KINDS.update(added)
    return added


def run_job(store: Path, key: str) -> int:
    """Run one claimed job to its end or its next checkpoint; returns the worker's exit status."""
    from xaug.engine.errors import is_permanent
    from xaug.engine.jobs import job_function
    from xaug.engine.jobs.context import JobContext, JobInterrupted
    from xaug.store import open_store
    from xaug.store.jobs import (
        load_job,
        load_job_deps,
        mark_job_done,
        mark_job_failed,
        mark_job_interrupted,
        set_job_pid,
    )

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    db = open_store(store)
    job = load_job(db, key)
    if job is None:
        print(f"worker: no job {key} in {store}", file=sys.stderr)
        return EXIT_USAGE
    if job["status"] != "running":
        print(f"worker: job {key[:16]} is {job['status']}, not running: nothing to do", file=sys.stderr)
        return EXIT_NOT_RUNNING
    set_job_pid(db, key, os.getpid())
    device = os.environ.get("XAUG_DEVICE") or ("cuda" if os.environ.get("CUDA_VISIBLE_DEVICES") else "cpu")
    ctx = JobContext(key=key, kind=job["kind"], config=job["config"], db=db, db_path=Path(store).resolve(),
                     deps=load_job_deps(db, key), device=device, stop_requested=stop.is_set)
    print(f"worker pid {os.getpid()}: {job['kind']} '{job['label']}' on {device}", flush=True)
    try:
        job_function(job["kind"])(ctx)
    except JobInterrupted:
        status = mark_job_interrupted(db, key, "interrupted: resumes from its checkpoint")
        print(f"worker: stopped after a checkpoint; job is now {status}", flush=True)
        return EXIT_INTERRUPTED
    except Exception as exc:
        traceback.print_exc()
        sys.stderr.flush()
        permanent = is_permanent(exc)
        # A user-fixable error's whole message says what to fix; otherwise the traceback's last line is the gist.
        error = f"{type(exc).__name__}: {exc}" if permanent else \
            "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
        status = mark_job_failed(db, key, error, EXIT_FAILED, retryable=not permanent)
        print(f"worker: job failed ({error}); job is now {status}", flush=True)
        return EXIT_FAILED
    mark_job_done(db, key)
    print("worker: done", flush=True)
    return EXIT_DONE


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse --store/--job, register extra kinds, run the job."""
    parser = argparse.ArgumentParser(prog="python -m xaug.engine.queue.worker",
                                     description="Run one claimed xaug job (started by the engine).")
    parser.add_argument("--store", required=True, type=Path, help="The study database.")
    parser.add_argument("--job", required=True, help="Key of the job to run.")
    args = parser.parse_args(argv)
    register_extra_kinds()
    return run_job(args.store, args.job)


def exit_now(code: int) -> None:
    """Flush and leave without the interpreter's slow teardown (torch, CUDA): the outcome is already in the
    store, and the engine frees this job's slot or GPU only when the process has gone."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
