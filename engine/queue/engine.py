"""The engine: one per store. It takes the store's engine lock, recovers jobs left running by a dead engine or
worker, then loops: claim runnable jobs that fit the free GPUs (or CPU slots), start a worker for each, watch
them, heartbeat, and record GPU load. SIGTERM (or SIGINT) checkpoints every running job, requeues it and exits;
jobs an executor keeps running without the engine (Slurm's) are left running, and the next engine adopts them.

This module never imports torch: it decides *when and where* jobs run; the worker imports the job's code.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
from xaug.store.errors import EngineError, StoreError
from xaug.engine.queue.executor import Executor, LocalExecutor
from xaug.engine.queue.gpus import detect_gpus, read_gpu_stats
from xaug.engine.queue.policy import GpuReservation, GpuSlot, memory_estimate_mb
from xaug.store import artifact_root, open_store
from xaug.store import jobs as q
from xaug.store.db import store_errors
from xaug.store.liveness import engine_alive, heartbeat_fresh

log = logging.getLogger("xaug.engine")

HEARTBEAT_S = 2.0
GPU_STATS_S = 5.0


def ensure_own_store(path: str | Path) -> Path:
    """Refuse a store file owned by another user (clients and the engine act as the owning user only)."""
    path = Path(path).expanduser().resolve()
    if path.exists():
        owner = path.stat().st_uid
        if owner != os.getuid():
            raise EngineError(f"{path} belongs to uid {owner}, not to you (uid {os.getuid()}): only the store's "
                              "owner may run an engine or send commands; use your own --store")
    return path


def logs_dir(store_path: str | Path) -> Path:
    """Folder of the workers' log files: `<artifact root>/logs/` (created 0700)."""
    path = artifact_root(store_path) / "logs"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    return path


def worker_process(pid: int | None, key: str) -> psutil.Process | None:
    """The live worker process of job `key` on this host, if `pid` is one: its command line names the job (a worker
    forked from the fork server carries the worker command line as its process title)."""
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or key not in " ".join(proc.cmdline()):
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def describe_exit(code: int) -> str:
    """'exit status 1' or 'signal 9 (SIGKILL)'."""
    if code < 0:
        try:
            return f"signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


class Engine:
    """Runs the jobs of one store on this machine's GPUs or CPU slots."""

    def __init__(self, store_path: str | Path, *, cpu_slots: int = 1, gpus: list[int] | None = None,
                 executor: Executor | None = None, poll_s: float = 0.5, grace_s: float = 30.0,
                 host: str | None = None, reserve_after_s: float = 0.0,
                 gpu_memory_mb: dict[int, float] | None = None) -> None:
        self.store_path = ensure_own_store(store_path)
        self.cpu_slots = max(1, int(cpu_slots))
        self._gpu_override = gpus
        self._gpu_memory_override = gpu_memory_mb
        self.gpus: list[int] = []
        self.gpu_memory: dict[int, float] = {}
        """Total memory (MiB) of each GPU that reports it; GPUs missing here are never shared."""
        self.gpu_claims: dict[str, float | None] = {}
        """Memory estimate (MiB) each running GPU job was placed with; None: it holds its GPUs whole."""
        self._measured: dict[str, float] | None = None
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.host = host or socket.gethostname()
        self.pid = os.getpid()
        self.executor = executor
        self.handles: dict[str, object] = {}
        self.db = None
        self._stop = threading.Event()
        self._last_heartbeat = 0.0
        self._last_gpu_stats = 0.0
        self.started = False
        self.recovered: list[str] = []
        self.left_running: list[str] = []
        """Keys of the jobs that `shutdown` left running on Slurm (the next engine adopts them)."""
        self.reservation = GpuReservation(reserve_after_s)
        """Which waiting multi-GPU job the freed GPUs are kept for (policy.py: no starvation, backfill)."""

    # --- life cycle -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the store, take the engine lock (EngineError if another engine holds it), find GPUs, recover.

        A store that fails (read-only, disk full) raises StoreError, and the lock is not left behind."""
        self.db = open_store(self.store_path)
        try:
            with store_errors(self.store_path):
                self._start()
        except StoreError:
            self._close_store()
            raise

    def _start(self) -> None:
        holder = q.claim_engine(self.db, self.pid, self.host, lambda row: engine_alive(row, self.host))
        if holder is not None:
            self._close_store()
            raise EngineError(
                f"another engine (pid {holder['pid']} on {holder['host']}, started {holder['started_at']}) already "
                f"runs on {self.store_path}; submit to it with `xaug submit`, watch with `xaug status`, or stop it "
                "(kill -TERM its pid) before starting a new one")
        overridden = self._gpu_override is not None and self._gpu_memory_override is not None
        found = [] if overridden else detect_gpus()  # one probe: which GPUs, and their memory
        self.gpus = list(self._gpu_override) if self._gpu_override is not None else [g["gpu"] for g in found]
        memory = self._gpu_memory_override if self._gpu_memory_override is not None else \
            {g["gpu"]: g["memory_total_mb"] for g in found if g["memory_total_mb"]}
        self.gpu_memory = {g: float(mb) for g, mb in memory.items() if g in self.gpus}
        if self.executor is None:
            threads = max(1, (os.cpu_count() or 1) // self.cpu_slots)
            self.executor = LocalExecutor(self.store_path, cpu_threads=threads)
        self.recovered = self.recover()
        self.started = True
        log.info("engine pid %d on %s: %s, %d CPU slot(s); recovered %d job(s)", self.pid, self.host,
                 f"GPUs {self.gpus}" if self.gpus else "no GPU", self.cpu_slots, len(self.recovered))

    def recover(self) -> list[str]:
        """Requeue jobs left running by a dead engine or worker; a live orphaned worker is stopped first."""
        requeued = []
        for job in q.running_jobs(self.db):
            if job["key"] in self.handles:
                continue
            adopted = self.executor.adopt(job) if hasattr(self.executor, "adopt") else None
            if adopted is not None:  # a remote executor's job outlives the engine: watch it again
                self.handles[job["key"]] = adopted
                log.info("watching %s (%s) again", job["key"][:12], job["label"])
                continue
            if job["host"] not in (None, self.host):
                if heartbeat_fresh(job["heartbeat_at"]):
                    continue  # an engine on another machine still runs it
            else:
                self._stop_orphan(job)
            status = q.mark_job_interrupted(self.db, job["key"], "requeued after an engine or worker crash")
            log.info("recovered %s (%s): now %s", job["key"][:12], job["label"], status)
            requeued.append(job["key"])
        return requeued

    def _stop_orphan(self, job: dict) -> None:
        proc = worker_process(job["pid"], job["key"])
        if proc is None:
            return
        log.info("stopping orphaned worker pid %d of %s", proc.pid, job["key"][:12])
        try:
            proc.terminate()
            proc.wait(timeout=self.grace_s)
        except psutil.TimeoutExpired:
            proc.kill()
        except psutil.NoSuchProcess:
            pass

    def request_stop(self) -> None:
        """Ask the loop to stop: running jobs checkpoint and are requeued (Slurm's run on), then `run` returns."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop.is_set()

    def run(self, until: Callable[[], bool] | None = None, on_step: Callable[["Engine"], None] | None = None) -> None:
        """Loop until SIGTERM/SIGINT, `request_stop()`, or `until()` returns True; then shut down cleanly.

        If the store fails (disk full, made read-only) the workers are stopped and StoreError is raised."""
        previous = self._install_signals()  # before start: a SIGTERM while the engine takes its lock stops it cleanly
        try:
            if not self.started:
                self.start()
            self._loop(until, on_step)
        finally:
            self._restore_signals(previous)

    def _loop(self, until, on_step) -> None:
        """Step until stopped (see run), then shut down: workers checkpoint, the lock is dropped."""
        try:
            with store_errors(self.store_path):
                while not self._stop.is_set():
                    self.step()
                    if on_step is not None:
                        on_step(self)
                    if until is not None and not self.handles and until():
                        break
                    self._stop.wait(self.poll_s)
        except StoreError as exc:
            log.error("%s; stopping every worker and the engine", exc)
            raise
        finally:
            self.shutdown()

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: self.request_stop())
        return previous

    @staticmethod
    def _restore_signals(previous: dict) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def shutdown(self) -> None:
        """Ask every worker to checkpoint (SIGTERM), wait up to grace_s, kill the rest, requeue, drop the lock.

        Jobs that the executor keeps running without an engine (on Slurm) are left running instead: they stay
        `running` in the store and the next engine adopts them (`recover`)."""
        if self.db is None:
            return
        self._leave_running()
        for handle in self.handles.values():
            self.executor.terminate(handle)
        deadline = time.monotonic() + self.grace_s
        while self.handles and time.monotonic() < deadline:
            self._reap(stopping=True)
            time.sleep(0.05)
        for handle in list(self.handles.values()):
            log.warning("%s did not stop within %.0f s: killing it", handle.key[:12], self.grace_s)
            self.executor.kill(handle)
        deadline = time.monotonic() + 10.0
        while self.handles and time.monotonic() < deadline:
            self._reap(stopping=True)
            time.sleep(0.02)
        try:
            with store_errors(self.store_path):
                q.release_engine(self.db, self.pid, self.host)
        except StoreError as exc:  # the lock stays, but its pid is gone: clients see this engine as not running
            log.error("could not release the engine lock: %s", exc)
        self._close_store()

    def _leave_running(self) -> None:
        """Stop watching the jobs the executor keeps running while no engine runs (`keeps_running`); what they
        journal meanwhile is applied by the engine that adopts them."""
        keeps_running = getattr(self.executor, "keeps_running", None)
        if keeps_running is None:
            return
        left = [key for key, handle in self.handles.items() if keeps_running(handle)]
        for key in left:
            del self.handles[key]
        self.left_running = left
        if left:
            log.info("left %d job(s) running on %s; the next engine on this store watches them again", len(left),
                     type(self.executor).__name__)

    def _close_store(self) -> None:
        self.db.conn.close()
        self.db = None
        self.started = False

    # --- one turn of the loop ----------------------------------------------------------------------------------------

    def step(self) -> None:
        """Reap finished workers, enforce cancels, heartbeat, then start whatever fits."""
        self._reap(stopping=False)
        self._enforce_cancels()
        clock = time.monotonic()
        if clock - self._last_heartbeat >= HEARTBEAT_S:
            self._last_heartbeat = clock
            if not q.heartbeat_engine(self.db, self.pid, self.host):
                log.error("engine lock lost (another engine took over the store); stopping")
                self.request_stop()
                return
            q.heartbeat_jobs(self.db, list(self.handles))
            if hasattr(self.executor, "refresh_states"):
                self.executor.refresh_states()  # a remote executor records its jobs' final states
        if self.gpus and clock - self._last_gpu_stats >= GPU_STATS_S:
            self._last_gpu_stats = clock
            stats = read_gpu_stats()
            if stats:
                q.record_gpu_stats(self.db, stats)
        if not self._stop.is_set():
            self.dispatch()

    def gpu_slots(self) -> list[GpuSlot]:
        """Each GPU with the number of jobs running on it and the memory they were placed with (policy.py)."""
        jobs = {g: 0 for g in self.gpus}
        claimed = {g: 0.0 for g in self.gpus}
        whole: set[int] = set()
        for key, handle in self.handles.items():
            claim = self.gpu_claims.get(key)
            for g in handle.gpu_ids:
                if g not in jobs:
                    continue
                jobs[g] += 1
                if claim is None:
                    whole.add(g)
                else:
                    claimed[g] += claim
        return [GpuSlot(g, self.gpu_memory.get(g), claimed[g], jobs[g], g in whole) for g in self.gpus]

    def job_memory_mb(self, job: dict) -> float | None:
        """The GPU memory (MiB) a job is placed with: declared in its recipe, or estimated from the peak measured
        on earlier done jobs of its memory group; None (it takes its GPUs whole) when neither is known."""
        group = job.get("memory_group")
        measured = None
        if group and not job.get("gpu_memory_mb"):
            if self._measured is None:  # read once per dispatch pass, only when a job asks for it
                self._measured = q.measured_gpu_memory(self.db)
            measured = self._measured.get(group)
        return memory_estimate_mb(job.get("gpu_memory_mb"), measured)

    def free_cpu_slots(self) -> int:
        """CPU slots not used by a running worker (CPU jobs use a slot; GPU jobs do not)."""
        return self.cpu_slots - sum(1 for handle in self.handles.values() if not handle.gpu_ids)

    def _fits(self, job: dict) -> list[int] | None:
        """The GPU ids to start `job` on ([] for a CPU slot), or None: it must wait.

        An executor that allocates GPUs itself (Slurm: `--gpus-per-node`) gets every job in a slot, whatever this
        machine's GPUs: the local GPU check and the reservation policy are for local workers only."""
        if getattr(self.executor, "allocates_gpus", False):
            return [] if self.free_cpu_slots() > 0 else None
        need = min(int(job["gpus_needed"] or 0), len(self.gpus))
        if need == 0:
            return [] if self.free_cpu_slots() > 0 else None
        return self.reservation.gpus_for(job["key"], need, self.gpu_slots(), self.job_memory_mb(job))

    def dispatch(self) -> list[str]:
        """Start runnable jobs while some fit; returns the keys started."""
        started = []
        self._measured = None
        if self.reservation.tracking:
            self.reservation.keep_only(job["key"] for job in q.runnable_jobs(self.db, limit=500))
        while self.free_cpu_slots() > 0 or any(not slot.whole for slot in self.gpu_slots()):
            job = q.claim_job(self.db, self._fits, host=self.host, log_path_for=self._log_path)
            if job is None:
                break
            if job["gpu_ids"]:
                self.gpu_claims[job["key"]] = self.job_memory_mb(job)
            try:
                handle = self.executor.start(job, job["gpu_ids"], Path(job["log_path"]))
            except OSError as exc:
                self.gpu_claims.pop(job["key"], None)
                q.mark_job_failed(self.db, job["key"], f"could not start the worker: {exc}")
                continue
            q.set_job_pid(self.db, job["key"], handle.pid)
            self.handles[job["key"]] = handle
            started.append(job["key"])
            log.info("started %s (%s) pid %s", job["key"][:12], job["label"], handle.pid)
        if started and hasattr(self.executor, "flush"):
            self.executor.flush()  # a remote executor submits what was started together (e.g. a Slurm job array)
        return started

    def _log_path(self, job: dict) -> str:
        return str(logs_dir(self.store_path) / f"{job['kind']}-{job['key'][:16]}.log")

    def _reap(self, stopping: bool) -> None:
        for key, handle in list(self.handles.items()):
            code = self.executor.poll(handle)
            if code is None:
                continue
            del self.handles[key]
            self.gpu_claims.pop(key, None)
            try:
                with store_errors(self.store_path):
                    self._record_exit(key, handle, code, stopping)
            except StoreError as exc:
                if not stopping:
                    raise
                # Shutting down because the store failed: the job stays `running`; the next engine requeues it.
                log.error("could not record that %s ended (%s)", key[:12], exc)

    def _record_exit(self, key: str, handle, code: int, stopping: bool) -> None:
        """Record a worker's exit; a job it left running is requeued (stopped by the engine) or failed (it died:
        a transient failure, retried while attempts are left)."""
        q.record_job_exit(self.db, key, code)
        job = q.load_job(self.db, key)
        if job is None or job["status"] != "running":
            log.info("%s exited (%s): %s", key[:12], describe_exit(code), job and job["status"])
            return
        if stopping or handle.terminate_sent_at is not None:
            status = q.mark_job_interrupted(self.db, key, "stopped by the engine; resumes from its checkpoint")
        else:
            error = f"worker died with {describe_exit(code)}; see {handle.log_path}"
            status = q.mark_job_failed(self.db, key, error, code)
        log.info("%s worker ended with %s: now %s", key[:12], describe_exit(code), status)

    def _enforce_cancels(self) -> None:
        """A running job whose cancel was requested gets SIGTERM; if it ignores it for grace_s, SIGKILL."""
        if not self.handles:
            return
        for key, handle in list(self.handles.items()):
            if handle.terminate_sent_at is None:
                if q.is_cancel_requested(self.db, key):
                    handle.terminate_sent_at = time.monotonic()
                    self.executor.terminate(handle)
            elif time.monotonic() - handle.terminate_sent_at > self.grace_s:
                self.executor.kill(handle)
