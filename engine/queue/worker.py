"""The worker: runs one job in its own process (`python -m xaug.engine.queue.worker --store DB --job KEY`).

It builds the job's `JobContext`, calls the job kind's `run(ctx)` and records the outcome: done; failed (the last
line of the traceback as the job's error, the whole traceback in the log; retried only when the failure may heal,
see `xaug.store.errors.is_permanent`); or, when the job checkpointed and
raised `JobInterrupted` (SIGTERM from the engine, or a cancel request), queued again to resume later without
counting an attempt, or cancelled if a cancel was requested.

Job kinds are the installed entry points of the group `xaug.job_kinds` (engine/plugins.py), as the worker's
sys.path finds them.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Annotated

import typer

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 3
EXIT_NOT_RUNNING = 4


def hub_offline() -> None:
    """Switch the Hugging Face hub off in this process, whatever the user's environment says: weights were checked
    when the recipe was submitted, and a job must fail at once on a missing one, not retry downloads for minutes.

    The environment covers libraries imported from now on; the fork server's preload may have imported
    huggingface_hub already (it reads HF_HUB_OFFLINE once, at import), so its constant is switched as well: every
    hub request then raises OfflineModeIsEnabled, and timm, diffusers and transformers load from the cache only.
    """
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[name] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


def run_job(store: Path, key: str, journal: Path | None = None) -> int:
    """Run one claimed job to its end or its next checkpoint; returns the worker's exit status.

    With `journal` (a remote worker) the job never opens the store: it reads the snapshot the engine wrote,
    records into a private copy, and its changes and outcome go to the journal file for the engine to apply.
    """
    hub_offline()
    from xaug.store.errors import is_permanent
    from xaug.engine.jobs import job_function
    from xaug.engine.jobs.context import JobContext, JobInterrupted
    from xaug.store.jobs import load_job, load_job_deps, set_job_pid

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):  # USR2: Slurm's warning before the time limit
        signal.signal(signum, lambda *_: stop.set())
    outcome = _JournalOutcome(journal) if journal is not None else _StoreOutcome(store)
    db = outcome.db
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
                     deps=load_job_deps(db, key), device=device, stop_requested=lambda: stop.is_set() or
                     outcome.stop_requested(), on_record=outcome.flush)
    print(f"worker pid {os.getpid()}: {job['kind']} '{job['label']}' on {device}", flush=True)
    try:
        job_function(job["kind"])(ctx)
    except JobInterrupted:
        status = outcome.interrupted(key, "interrupted: resumes from its checkpoint")
        print(f"worker: stopped after a checkpoint; job is now {status}", flush=True)
        return EXIT_INTERRUPTED
    except Exception as exc:
        traceback.print_exc()
        sys.stderr.flush()
        permanent = is_permanent(exc)
        # A user-fixable error's whole message says what to fix; otherwise the traceback's last line is the gist.
        error = f"{type(exc).__name__}: {exc}" if permanent else \
            "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
        status = outcome.failed(key, error, retryable=not permanent)
        print(f"worker: job failed ({error}); job is now {status}", flush=True)
        return EXIT_FAILED
    outcome.done(key)
    print("worker: done", flush=True)
    return EXIT_DONE


def peak_gpu_memory_mb() -> float | None:
    """The most GPU memory PyTorch reserved in this process (MiB), or None when the job never used CUDA here.

    Looked up in sys.modules: a job that never imported torch does not pay for importing it now."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    return torch.cuda.max_memory_reserved() / 2**20


class _StoreOutcome:
    """A local worker records straight into the store."""

    def __init__(self, store: Path) -> None:
        from xaug.store import open_store

        self.db = open_store(store, create=False)  # the engine hands over its own store: never create one here

    def flush(self, urgent: bool = False) -> None:
        """Nothing to do: every record is already in the store."""

    def stop_requested(self) -> bool:
        """Cancels reach a local worker through the store (JobContext) and SIGTERM."""
        return False

    def done(self, key: str) -> None:
        """Mark the job done, with the peak GPU memory it used (the local scheduler sizes later jobs by it)."""
        from xaug.store.jobs import mark_job_done, record_peak_gpu_memory

        peak = peak_gpu_memory_mb()
        if peak:
            record_peak_gpu_memory(self.db, key, peak)
        mark_job_done(self.db, key)

    def failed(self, key: str, error: str, retryable: bool = True) -> str:
        from xaug.store.jobs import mark_job_failed

        return mark_job_failed(self.db, key, error, EXIT_FAILED, retryable=retryable)

    def interrupted(self, key: str, reason: str) -> str:
        from xaug.store.jobs import mark_job_interrupted

        return mark_job_interrupted(self.db, key, reason)


class _JournalOutcome:
    """A remote worker records into a private copy of its snapshot; changes and outcome go to its journal."""

    FLUSH_S = 1.0
    """Progress alone is journaled at most once a second; metrics and checkpoints at once (see JobContext)."""

    def __init__(self, folder: Path) -> None:
        from xaug.engine.queue.journal import JournalWriter, read_snapshot
        from xaug.store.changes import open_scratch_store

        self.folder = Path(folder)
        self.db = open_scratch_store(read_snapshot(self.folder))
        self.writer = JournalWriter(self.folder)
        self._flushed_at = 0.0

    def flush(self, urgent: bool = False) -> None:
        """Append the rows recorded since the last flush to the journal (progress alone: at most once a second)."""
        import time

        from xaug.store.changes import drain_changes

        if urgent or time.monotonic() - self._flushed_at >= self.FLUSH_S:
            self._flushed_at = time.monotonic()
            self.writer.changes(drain_changes(self.db))

    def stop_requested(self) -> bool:
        """The engine's stop file (a cancel) in the journal folder."""
        from xaug.engine.queue.journal import stop_requested

        return stop_requested(self.folder)

    def _end(self, status: str, error: str | None = None, retryable: bool = True) -> str:
        self.flush(urgent=True)
        self.writer.outcome(status, error, retryable)
        self.writer.close()
        return f"{status} (journaled)"

    def done(self, key: str) -> None:
        self._end("done")

    def failed(self, key: str, error: str, retryable: bool = True) -> str:
        return self._end("failed", error, retryable)

    def interrupted(self, key: str, reason: str) -> str:
        return self._end("interrupted")


def run_remote_job(store: str, key: str, journal: str, log_path: str) -> int:
    """Entry point of a worker on another node (Slurm): run the job against its journal folder, its output
    appended to the job's log in the shared artifact folder (where `xaug logs` reads it)."""
    fd = os.open(log_path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    print(f"=== Slurm job {os.environ.get('SLURM_JOB_ID')} on {os.uname().nodename} ===", flush=True)
    code = run_job(Path(store), key, Path(journal))
    sys.stdout.flush()
    return code


cli = typer.Typer(add_completion=False)


@cli.command(help="Run one claimed xaug job (started by the engine).")
def _run(store: Annotated[Path, typer.Option(help="The study database.")],
         job: Annotated[str, typer.Option(help="Key of the job to run.")],
         journal: Annotated[Path | None, typer.Option(help="Journal folder: record there instead of in the store.")]
         = None) -> int:
    return run_job(store, job, journal)


def main(argv: list[str] | None = None) -> int:
    """Entry point: --store, --job and --journal, then the job; returns the worker's exit status (2 with one line
    for a bad command line, through the CLIs' one runner)."""
    from xaug.engine.cli.runner import exit_code

    return exit_code(cli, "python -m xaug.engine.queue.worker", argv)


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
