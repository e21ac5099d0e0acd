"""Workers started from a pre-imported parent: one process per job, forked from a multiprocessing fork server
whose preload (`xaug.engine.queue.preload`) has imported the job kinds' heavy modules once.

Each job still gets a process of its own, as with `python -m xaug.engine.queue.worker`: it can be killed with
SIGKILL without harm to others, it runs in its own session, it gets SIGTERM when its parent dies (the fork server,
which exits when the engine does), its environment (CUDA_VISIBLE_DEVICES, XAUG_DEVICE, thread counts) is set
before anything touches CUDA, its stdout and stderr go to its log file, and its process title is the worker
command line, so that `ps` and the engine's recovery (`worker_process`) see which job it runs.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from pathlib import Path

import setproctitle

PRELOAD = ["__main__", "xaug.engine.queue.preload"]
"""Modules the fork server imports once ('__main__': the engine's main script, which every child would otherwise
re-import)."""

_context = multiprocessing.get_context("forkserver")


class ForkedWorker:
    """A worker process forked by the fork server: the `poll`/`terminate`/`kill` of `subprocess.Popen`."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process
        self.pid = process.pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit status (negative: the signal that killed it), or None while it runs."""
        if self.returncode is None:
            code = self.process.exitcode
            if code is not None:
                self.returncode = code
                self.process.close()  # frees the sentinel; the fork server has reaped the process
        return self.returncode

    def send_signal(self, signum: int) -> None:
        """Send a signal while the process runs."""
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        """SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)


def start_forked_worker(store_path: Path, key: str, env: dict[str, str], log_path: Path) -> ForkedWorker:
    """Fork a worker for job `key` from the fork server (started, with its preload, on first use)."""
    _context.set_forkserver_preload(PRELOAD)  # takes effect when the server starts; later calls change nothing
    process = _context.Process(target=_worker_main, args=(str(store_path), key, env, str(log_path)),
                               name=f"xaug-worker-{key[:12]}", daemon=False)
    process.start()
    return ForkedWorker(process)


def _worker_main(store_path: str, key: str, env: dict[str, str], log_path: str) -> None:
    """In the forked child: become the job's own worker process, run the job, leave with its exit status."""
    from xaug.engine.plugins import forget_plugins
    from xaug.engine.queue.executor import die_with_parent, worker_command
    from xaug.engine.queue.worker import exit_now, run_job

    os.setsid()
    die_with_parent()
    # Before the environment changes: setproctitle finds the argv memory it rewrites next to the original environ.
    setproctitle.setproctitle(" ".join(worker_command(Path(store_path), key)))
    _redirect_output(log_path)
    _set_environment(env)
    if _cuda_lost_in_fork():
        # Something in the preload initialised CUDA, which a forked child cannot use: run as a fresh process.
        print("worker: CUDA was initialised before the fork; starting a fresh worker process", flush=True)
        command = worker_command(Path(store_path), key)
        os.execv(command[0], command)
    forget_plugins()  # the fork server read the entry points on its own sys.path; this job's PYTHONPATH may add some
    exit_now(run_job(Path(store_path), key))


def _cuda_lost_in_fork() -> bool:
    """Whether this GPU worker inherited an initialised CUDA (torch then refuses every CUDA call)."""
    torch = sys.modules.get("torch")
    if torch is None or os.environ.get("XAUG_DEVICE") != "cuda":
        return False
    return bool(getattr(torch.cuda, "_is_in_bad_fork", lambda: False)())


def _redirect_output(log_path: str) -> None:
    """stdin from /dev/null; stdout and stderr appended to the job's log file, line by line."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)


def _set_environment(env: dict[str, str]) -> None:
    """The worker's environment as an exec'd worker would have it: variables, PYTHONPATH, thread count."""
    os.environ.clear()
    os.environ.update(env)
    for entry in reversed([p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    threads = env.get("OMP_NUM_THREADS")
    if threads and "torch" in sys.modules:
        # The preloaded torch read its thread count in the fork server; this worker's slot may have another.
        sys.modules["torch"].set_num_threads(int(threads))
