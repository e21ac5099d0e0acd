"""Helpers of the engine tests: planned fake jobs, submitting them, running an engine until the queue is idle."""

from __future__ import annotations


def fake(name: str, deps=(), *, priority: int = 0, gpus: int = 0, max_attempts: int = 3, kind: str = "fake", **cfg):
    """A planned fake job named `name` (its config carries the name, so keys differ)."""
    from xaug.engine.planner import make_job

    return make_job(kind, {"name": name, **cfg}, [d.key for d in deps], label=name, priority=priority,
                    gpus_needed=gpus, max_attempts=max_attempts)


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
