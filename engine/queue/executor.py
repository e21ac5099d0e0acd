"""Executors start a job's worker somewhere and watch it. `LocalExecutor` runs it as a process of its own on
this machine, forked from a pre-imported fork server (or, with `start="exec"`, as a fresh
`python -m xaug.engine.queue.worker`); `slurm.SlurmExecutor` submits it to a Slurm cluster. An executor may also
have `flush()` (submit what `start` queued, called after each dispatch), `refresh_states()` (called with the
engine's heartbeat), `adopt(job)` (a handle for a job left running by a previous engine whose worker still
runs, or None), `keeps_running(handle)` (True: a stopping engine leaves that job running for the next engine to
adopt) and `allocates_gpus = True` (it finds GPUs itself: the engine skips its own GPU check)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from xaug.engine.queue.forkserver import ForkedWorker, start_forked_worker
from xaug.store import now

_PR_SET_PDEATHSIG = 1


class Executor(Protocol):
    """Where workers run: start one for a job, poll it, ask it to stop, or kill it."""

    def start(self, job: dict, gpu_ids: list[int], log_path: Path) -> Any:
        """Start the worker of a claimed job; returns a handle with at least `key` and `pid`."""

    def poll(self, handle: Any) -> int | None:
        """The worker's exit status (negative: killed by that signal), or None while it runs."""

    def terminate(self, handle: Any) -> None:
        """Ask the worker to checkpoint and stop (SIGTERM)."""

    def kill(self, handle: Any) -> None:
        """Stop the worker now (SIGKILL)."""


@dataclass
class LocalHandle:
    """A worker process on this machine."""

    key: str
    pid: int
    process: subprocess.Popen | ForkedWorker
    """Either kind answers poll(), terminate() and kill()."""
    gpu_ids: list[int]
    log_path: Path
    terminate_sent_at: float | None = None
    extra: dict = field(default_factory=dict)


def worker_command(store_path: Path, key: str, python: str = sys.executable) -> list[str]:
    """The command line of a job's worker process."""
    return [python, "-m", "xaug.engine.queue.worker", "--store", str(store_path), "--job", key]


def die_with_parent() -> None:
    """In the child: get SIGTERM when its parent dies (Linux), so an orphaned worker checkpoints and stops. The parent
    is the engine, or the fork server, which exits when the engine does."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


START_METHODS = ("forkserver", "exec")


class LocalExecutor:
    """Runs each job in a worker process of its own with only its GPUs visible.

    `start="forkserver"` (the default) forks it from a fork server that imported torch and the job kinds once;
    `start="exec"` runs a fresh `python -m xaug.engine.queue.worker`, paying the imports for every job.
    """

    def __init__(self, store_path: str | Path, *, cpu_threads: int | None = None, python: str = sys.executable,
                 env: dict[str, str] | None = None, start: str = "forkserver") -> None:
        if start not in START_METHODS:
            raise ValueError(f"start must be one of {', '.join(START_METHODS)}, not '{start}'")
        self.start_method = start
        self.store_path = Path(store_path).resolve()
        self.cpu_threads = cpu_threads
        self.python = python
        self.env = dict(env or {})

    def worker_env(self, gpu_ids: list[int]) -> dict[str, str]:
        """The environment of a worker: only its GPUs visible, in PCI bus order."""
        env = dict(os.environ)
        env.update(self.env)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_ids)
        env["XAUG_DEVICE"] = "cuda" if gpu_ids else "cpu"
        env["XAUG_ENGINE_PID"] = str(os.getpid())
        env.setdefault("PYTHONUNBUFFERED", "1")  # `xaug logs --follow` shows output as it is written
        if not gpu_ids and self.cpu_threads and "OMP_NUM_THREADS" not in self.env:
            env["OMP_NUM_THREADS"] = str(self.cpu_threads)
        return env

    def start(self, job: dict, gpu_ids: list[int], log_path: Path) -> LocalHandle:
        """Start the worker, its stdout and stderr appended to `log_path`."""
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(log_path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab", buffering=0) as log:
            device = f"GPUs {','.join(map(str, gpu_ids))}" if gpu_ids else "CPU"
            log.write(f"=== {now()} start {job['kind']} {job['key'][:16]} on {device} ===\n".encode())
            if self.start_method == "forkserver":
                process = start_forked_worker(self.store_path, job["key"], self.worker_env(gpu_ids), log_path)
            else:
                process = subprocess.Popen(
                    worker_command(self.store_path, job["key"], self.python),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.worker_env(gpu_ids),
                    start_new_session=True, preexec_fn=die_with_parent, close_fds=True,
                )
        return LocalHandle(key=job["key"], pid=process.pid, process=process, gpu_ids=list(gpu_ids), log_path=log_path)

    def poll(self, handle: LocalHandle) -> int | None:
        """The exit status, or None while running."""
        return handle.process.poll()

    def terminate(self, handle: LocalHandle) -> None:
        """SIGTERM: the job checkpoints at its next check and the worker requeues it."""
        if handle.process.poll() is None:
            handle.process.terminate()

    def kill(self, handle: LocalHandle) -> None:
        """SIGKILL."""
        if handle.process.poll() is None:
            handle.process.kill()
