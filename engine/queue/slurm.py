"""The Slurm executor: the engine decides what runs; Slurm runs it (through submitit).

Each claimed job becomes one sbatch job running `worker.run_remote_job`; the jobs claimed in one turn of the
engine's loop that ask for the same resources go out together as one job array (`submitit`'s `batch()`).
Workers on the cluster never open the SQLite store: they record into their journal in the shared artifact
folder (`journal.py`) and this executor, on the engine's host, applies it to the store whenever it polls.

- Settings come from the recipe of the job's study (`resources.slurm`): partition, account, qos, time limit,
  CPUs/GPUs/memory per job kind, extra sbatch options. Kinds in `local_kinds` (analyse, which reads the whole
  study) run on the engine's host through the local executor.
- The Slurm job id and state are stored with the job (`xaug status` shows them); states come from
  `squeue -t all` (this needs no accounting database: `sacct` does).
- Cancel/stop: a stop file in the journal folder and `scancel` (SIGTERM: the worker checkpoints, journals
  'interrupted' and exits; Slurm shows the job CANCELLED). Kill: `scancel --signal=KILL`.
- A job that ends without a journaled outcome (killed, node failure, preempted, time limit) is handled as a dead
  local worker is: it goes back to xaug's queue and its next run resumes from its checkpoint. Slurm's own
  requeue is off (`--no-requeue`), so a job never runs twice at once.
- GPUs: Slurm allocates them (`gpus_needed`, or the kind's `gpus`, as `--gpus-per-node`: N GPUs on one node), so
  the engine neither checks this machine's GPUs nor reserves them for Slurm jobs (`allocates_gpus`).
- Engine restarts: Slurm jobs outlive the engine. One that stops (SIGTERM) leaves them running (`keeps_running`)
  and the next engine adopts them (`adopt`); only jobs run here (`local_kinds`) checkpoint and are requeued.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from xaug.store.errors import EngineError
from xaug.engine.queue.executor import LocalExecutor, LocalHandle
from xaug.engine.queue.journal import OUTCOME_EXIT, ingest_journal, journal_dir, request_stop, write_snapshot
from xaug.store import artifact_root, open_store
from xaug.store.changes import set_slurm_job, set_slurm_state
from xaug.store.jobs import job_studies, mark_job_failed, mark_job_interrupted
from xaug.store.studies import load_study

log = logging.getLogger("xaug.engine.slurm")

ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
          "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}
LOST_NODE = {"PREEMPTED", "NODE_FAIL", "BOOT_FAIL"}
"""Ended through no fault of the job: it goes back to the queue without counting an attempt."""
STATE_CACHE_S = 1.0
SIGNAL_DELAY_S = 120
"""Seconds before the time limit at which Slurm sends SIGUSR2: the job checkpoints and is submitted again."""


@dataclass
class SlurmHandle:
    """A job submitted to Slurm (or about to be: `slurm_job_id` is set by `flush`)."""

    key: str
    kind: str
    log_path: Path
    journal: Path
    params: dict
    pid: int | None = None
    gpu_ids: list[int] = field(default_factory=list)
    slurm_job_id: str | None = None
    state: str | None = None
    exit_code: int | None = None
    terminate_sent_at: float | None = None
    journal_offset: int = 0


class SlurmExecutor:
    """Submits each job to Slurm with submitit and watches it with `squeue`; see the module docstring."""

    allocates_gpus = True
    """Slurm finds each job's GPUs: the engine gives every job a slot of `max_jobs`, whatever GPUs it has."""

    def __init__(self, store_path: str | Path, *, local: LocalExecutor | None = None) -> None:
        self.store_path = Path(store_path).resolve()
        self.local = local or LocalExecutor(self.store_path, cpu_threads=1)
        self.db = open_store(self.store_path)
        self.folder = artifact_root(self.store_path) / "slurm"
        self._pending: list[SlurmHandle] = []
        self._finishing: set[str] = set()  # Slurm ids whose job reported its outcome but may still be running
        self._states: dict[str, str] = {}
        self._states_at = 0.0

    # --- the Executor protocol -----------------------------------------------------------------------------------

    def start(self, job: dict, gpu_ids: list[int], log_path: Path) -> SlurmHandle | LocalHandle:
        """Queue the job for submission at the next `flush` (the engine calls it after each dispatch)."""
        settings = self._settings(job)
        if job["kind"] in settings.get("local_kinds", ["analyse"]):
            return self.local.start(job, gpu_ids, log_path)
        set_slurm_job(self.db, job["key"], None, None)  # the previous run's Slurm job is not this one
        journal = write_snapshot(self.db, self.store_path, job["key"])
        handle = SlurmHandle(key=job["key"], kind=job["kind"], log_path=Path(log_path), journal=journal,
                             params=sbatch_parameters(settings, job))
        self._pending.append(handle)
        return handle

    def flush(self) -> None:
        """Submit the jobs started since the last flush: one job array per group of equal sbatch parameters."""
        pending, self._pending = self._pending, []
        groups: dict[str, list[SlurmHandle]] = {}
        for handle in pending:
            groups.setdefault(json.dumps(handle.params, sort_keys=True), []).append(handle)
        for handles in groups.values():
            try:
                ids = self._submit(handles)
            except Exception as exc:  # sbatch refused (bad partition, account...): the job fails with its reason
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                for handle in handles:
                    mark_job_failed(self.db, handle.key, f"sbatch failed: {reason}")
                    handle.exit_code = OUTCOME_EXIT["failed"]
                log.error("sbatch failed for %d job(s): %s", len(handles), reason)
                continue
            for handle, slurm_id in zip(handles, ids):
                handle.slurm_job_id, handle.state = slurm_id, "PENDING"
                set_slurm_job(self.db, handle.key, slurm_id, "PENDING")
            log.info("submitted %d %s job(s) to Slurm: %s", len(handles), handles[0].kind, ", ".join(ids))

    def poll(self, handle: SlurmHandle | LocalHandle) -> int | None:
        """Apply the worker's journal; its exit status once it journaled an outcome or Slurm ended it."""
        if isinstance(handle, LocalHandle):
            return self.local.poll(handle)
        if handle.exit_code is not None or handle.slurm_job_id is None:
            return handle.exit_code
        if (code := self._ingest(handle)) is not None:
            return code
        state = self._state(handle.slurm_job_id)
        if state != handle.state:
            handle.state = state
            set_slurm_state(self.db, handle.slurm_job_id, state)
        if state in ACTIVE:
            return None
        if (code := self._ingest(handle)) is not None:  # it wrote its outcome just before it ended
            return code
        handle.exit_code = self._ended_without_outcome(handle, state)
        return handle.exit_code

    def terminate(self, handle: SlurmHandle | LocalHandle) -> None:
        """Stop file plus `scancel` (SIGTERM): the worker checkpoints and stops; Slurm shows CANCELLED."""
        if isinstance(handle, LocalHandle):
            return self.local.terminate(handle)
        request_stop(handle.journal)
        if handle.slurm_job_id and handle.exit_code is None:
            _run(["scancel", handle.slurm_job_id])

    def kill(self, handle: SlurmHandle | LocalHandle) -> None:
        """`scancel --signal=KILL`, then cancel the job."""
        if isinstance(handle, LocalHandle):
            return self.local.kill(handle)
        if handle.slurm_job_id:
            _run(["scancel", "--signal=KILL", handle.slurm_job_id])
            _run(["scancel", handle.slurm_job_id])

    def adopt(self, job: dict) -> SlurmHandle | None:
        """After an engine restart: a handle for a running job that was submitted to Slurm (its journal and
        Slurm state say how it went meanwhile), or None for a job that never reached Slurm."""
        if not job.get("slurm_job_id"):
            return None
        return SlurmHandle(key=job["key"], kind=job["kind"], log_path=Path(job["log_path"] or ""),
                           journal=journal_dir(self.store_path, job["key"]), params={},
                           slurm_job_id=job["slurm_job_id"], state=job.get("slurm_state"))

    def keeps_running(self, handle: SlurmHandle | LocalHandle) -> bool:
        """Whether this job runs on without the engine (one submitted to Slurm that has not ended): a stopping
        engine leaves it running and the next one adopts it."""
        return isinstance(handle, SlurmHandle) and handle.slurm_job_id is not None and handle.exit_code is None

    def refresh_states(self) -> None:
        """Record the final Slurm state of jobs that already reported their outcome (COMPLETED, CANCELLED)."""
        for slurm_id in list(self._finishing):
            state = self._state(slurm_id)
            set_slurm_state(self.db, slurm_id, state)
            if state not in ACTIVE:
                self._finishing.discard(slurm_id)

    # --- helpers -----------------------------------------------------------------------------------------------------

    def _settings(self, job: dict) -> dict:
        """`resources.slurm` of the (first) study the job belongs to."""
        for study in job_studies(self.db, job["key"]):
            row = load_study(self.db, study)
            recipe = row.get("recipe") if row else None
            if isinstance(recipe, dict) and "resources" in recipe:
                return dict(recipe["resources"].get("slurm") or {})
        return {}

    def _submit(self, handles: list[SlurmHandle]) -> list[str]:
        import submitit

        from xaug.engine.queue.worker import run_remote_job

        executor = submitit.SlurmExecutor(folder=self.folder, max_num_timeout=0, python=sys.executable)
        executor.update_parameters(**handles[0].params)
        with executor.batch():
            jobs = [executor.submit(run_remote_job, str(self.store_path), h.key, str(h.journal), str(h.log_path))
                    for h in handles]
        return [str(job.job_id) for job in jobs]

    def _ingest(self, handle: SlurmHandle) -> int | None:
        done = ingest_journal(self.db, self.store_path, handle.key, handle.journal_offset)
        handle.journal_offset = done.offset
        for problem in done.rejected:
            log.warning("%s: its journal wrote %s; left out", handle.key[:12], problem)
        if done.outcome is None:
            return None
        handle.exit_code = OUTCOME_EXIT[done.outcome]
        self._finishing.add(handle.slurm_job_id)
        return handle.exit_code

    def _state(self, slurm_id: str) -> str:
        """The job's state from `squeue -t all` (which keeps finished jobs for MinJobAge), cached per second."""
        if time.monotonic() - self._states_at > STATE_CACHE_S:
            out = _run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "--me"])
            self._states = dict(line.split("|", 1) for line in out.splitlines() if "|" in line)
            self._states_at = time.monotonic()
        return self._states.get(slurm_id) or self._scontrol_state(slurm_id)

    def _scontrol_state(self, slurm_id: str) -> str:
        fields = _scontrol_fields(slurm_id)
        return fields.get("JobState", "UNKNOWN")

    def _ended_without_outcome(self, handle: SlurmHandle, state: str) -> int:
        """A job Slurm ended before it journaled an outcome: back to the queue (no attempt when the node was
        lost), or the engine counts it as a dead worker; returns the exit status to report."""
        if state in LOST_NODE:
            status = mark_job_interrupted(self.db, handle.key, f"Slurm job {handle.slurm_job_id} {state}: resumes "
                                          "from its checkpoint")
            log.info("%s: Slurm %s; now %s", handle.key[:12], state, status)
            return OUTCOME_EXIT["interrupted"]
        exit_code = _scontrol_fields(handle.slurm_job_id).get("ExitCode", "1:0")
        code, _, signum = exit_code.partition(":")
        if signum and int(signum):
            return -int(signum)
        if state == "CANCELLED":
            return -15
        return int(code) or 1


def sbatch_parameters(settings: dict, job: dict) -> dict:
    """submitit's parameters for one job, from `resources.slurm` and the job's kind."""
    from xaug.engine.recipe.schema import time_limit_minutes

    per_kind = (settings.get("kinds") or {}).get(job["kind"]) or {}

    def pick(name: str, default):
        return per_kind[name] if per_kind.get(name) is not None else default

    gpus = pick("gpus", int(job.get("gpus_needed") or 0))
    params = {
        "job_name": f"xaug-{job['kind']}",
        "time": time_limit_minutes(pick("time_limit", settings.get("time_limit") or "04:00:00")),
        "cpus_per_task": pick("cpus", settings.get("cpus_per_job") or 4),
        "signal_delay_s": SIGNAL_DELAY_S,
        "array_parallelism": settings.get("array_parallelism") or 256,
        "stderr_to_stdout": True,
        "additional_parameters": {"no-requeue": True, **(settings.get("extra_sbatch") or {})},
    }
    if gpus:
        params["gpus_per_node"] = gpus
    for name in ("partition", "account", "qos"):
        if settings.get(name):
            params[name] = settings[name]
    if pick("mem", settings.get("mem")):
        params["mem"] = pick("mem", settings.get("mem"))
    return params


def _scontrol_fields(slurm_id: str) -> dict[str, str]:
    out = _run(["scontrol", "show", "job", "-o", slurm_id])
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def _run(command: list[str]) -> str:
    """Run a Slurm command; its stdout ('' when it failed: a job Slurm forgot, a controller briefly away)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("%s: %s", " ".join(command), exc)
        return ""
    if done.returncode != 0:
        log.warning("%s: %s", " ".join(command), done.stderr.strip())
    return done.stdout


def slurm_engine(store_path: str | Path, *, max_jobs: int = 64, **options):
    """An engine whose jobs run on Slurm: at most `max_jobs` submitted at once, no local GPU used (Slurm
    allocates them). Raises EngineError when Slurm or submitit is missing."""
    from xaug.engine.queue.engine import Engine, ensure_own_store

    check_slurm()
    store_path = ensure_own_store(store_path)
    return Engine(store_path, cpu_slots=max_jobs, gpus=[], executor=SlurmExecutor(store_path), **options)


def check_slurm() -> None:
    """Raise EngineError unless Slurm's commands are here and its controller answers."""
    try:
        import submitit  # noqa: F401
    except ImportError as exc:
        raise EngineError("the Slurm executor needs submitit: pip install 'xaug[slurm]'") from exc
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"the Slurm executor needs Slurm's commands on this host, but `sinfo` cannot run: {exc}; "
                          "run the engine on a login node, or set resources.executor: local") from exc
    if done.returncode != 0:
        raise EngineError(f"the Slurm executor needs a Slurm controller, but `sinfo` failed: {done.stderr.strip()}")
