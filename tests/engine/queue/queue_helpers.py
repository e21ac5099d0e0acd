"""Helpers of the engine tests: planned fake jobs, submitting them, running an engine until the queue is idle."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def fake(name: str, deps=(), *, priority: int = 0, gpus: int = 0, max_attempts: int = 3, kind: str = "fake",
         gpu_memory_mb: float | None = None, memory_group: str | None = None, **cfg):
    """A planned fake job named `name` (its config carries the name, so keys differ)."""
    from xaug.engine.planner import make_job

    return make_job(kind, {"name": name, **cfg}, [d.key for d in deps], label=name, priority=priority,
                    gpus_needed=gpus, max_attempts=max_attempts, gpu_memory_mb=gpu_memory_mb,
                    memory_group=memory_group)


def submit(db, jobs, study: str = "s"):
    """Submit fake jobs as a study."""
    from xaug.store.jobs import submit_study

    return submit_study(db, study, None, "name: s", {"name": study}, jobs)


def run_engine(store_path, *, cpu_slots: int = 1, gpus=None, timeout: float = 60.0, grace_s: float = 10.0,
               study: str | None = "s"):
    """Run an in-process engine until the study has nothing left to run (or timeout); returns the engine."""
    import time

    from xaug.engine.queue.engine import Engine
    from xaug.store import open_store
    from xaug.store.jobs import study_finished

    engine = Engine(store_path, cpu_slots=cpu_slots, gpus=[] if gpus is None else gpus, poll_s=0.05,
                    grace_s=grace_s)
    engine.start()
    watch = open_store(store_path)
    deadline = time.monotonic() + timeout

    def until():
        if time.monotonic() > deadline:
            raise TimeoutError("engine did not finish the study in time")
        return study_finished(watch, study)

    try:
        engine.run(until=until)
    finally:
        watch.conn.close()
    return engine


@dataclass
class ManualHandle:
    key: str
    pid: int
    gpu_ids: list[int]
    log_path: Path
    terminate_sent_at: float | None = None
    code: int | None = None
    extra: dict = field(default_factory=dict)


class ManualExecutor:
    """Workers that run until the test finishes them (no processes)."""

    def __init__(self):
        self.handles: dict[str, ManualHandle] = {}

    def start(self, job, gpu_ids, log_path):
        handle = ManualHandle(job["key"], 10_000 + len(self.handles), list(gpu_ids), log_path)
        self.handles[job["label"]] = handle
        return handle

    def poll(self, handle):
        return handle.code

    def terminate(self, handle):
        handle.code = 3

    kill = terminate

    def finish(self, engine, label: str) -> None:
        """End the worker of job `label` as done, then let the engine take one turn."""
        from xaug.store.jobs import mark_job_done

        mark_job_done(engine.db, self.handles[label].key)
        self.handles[label].code = 0
        engine.step()
