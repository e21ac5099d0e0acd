"""The GPU policy: a job needing N GPUs gets them without being starved by smaller jobs, which backfill the rest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from queue_helpers import fake, submit

from xaug.engine.queue.policy import GpuReservation


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_free_gpus_go_to_whoever_fits_when_nobody_waits():
    policy = GpuReservation()
    assert policy.gpus_for("a", 1, [0, 1, 2]) == [0]
    assert policy.gpus_for("b", 2, [1, 2]) == [1, 2]
    assert policy.holder is None and not policy.tracking


def test_a_blocked_wide_job_reserves_freed_gpus_and_smaller_jobs_backfill_only_the_rest():
    policy = GpuReservation()
    assert policy.gpus_for("wide", 3, [2]) is None  # one of four GPUs free: wide blocks and holds the reservation
    assert policy.holder == "wide" and policy.reserved([2]) == [2]
    assert policy.gpus_for("small", 1, [2]) is None  # the freed GPU is kept for wide
    assert policy.gpus_for("small", 1, [1, 2]) is None  # still short of 3: both kept
    assert policy.gpus_for("small", 1, [0, 1, 2, 3]) == [3]  # beyond wide's 3: backfilled
    assert policy.gpus_for("wide", 3, [0, 1, 2]) == [0, 1, 2]  # enough: wide starts, the reservation ends
    assert policy.holder is None and policy.gpus_for("small", 1, [3]) == [3]


def test_only_one_holder_at_a_time():
    policy = GpuReservation()
    assert policy.gpus_for("w1", 2, [0]) is None and policy.gpus_for("w2", 2, [0]) is None
    assert policy.holder == "w1"  # w2 cannot hold GPU 0 too: no two half-reserved wide jobs (deadlock)
    assert policy.gpus_for("w2", 2, [0, 1, 2, 3]) == [2, 3]  # w2 fits in what w1 does not need
    assert policy.gpus_for("w1", 2, [0, 1]) == [0, 1]


def test_reservation_starts_only_after_waiting_reserve_after_s():
    clock = Clock()
    policy = GpuReservation(reserve_after_s=60, clock=clock)
    assert policy.gpus_for("wide", 2, [0]) is None and policy.holder is None
    assert policy.gpus_for("small", 1, [0]) == [0]  # before 60 s smaller jobs use every free GPU
    clock.t = 61
    assert policy.gpus_for("wide", 2, [1]) is None and policy.holder == "wide"
    assert policy.gpus_for("small", 1, [1]) is None


def test_a_holder_that_left_the_queue_releases_its_reservation():
    policy = GpuReservation()
    policy.gpus_for("wide", 2, [0])
    policy.keep_only(["small"])  # wide was cancelled
    assert policy.holder is None and policy.gpus_for("small", 1, [0]) == [0] and not policy.tracking


# --- the hook in the engine: a stream of 1-GPU jobs does not starve a 2-GPU job ---------------------------------


@dataclass
class _Handle:
    key: str
    pid: int
    gpu_ids: list[int]
    log_path: Path
    terminate_sent_at: float | None = None
    code: int | None = None
    extra: dict = field(default_factory=dict)


class _ManualExecutor:
    """Workers that run until the test finishes them (no processes)."""

    def __init__(self):
        self.handles: dict[str, _Handle] = {}

    def start(self, job, gpu_ids, log_path):
        handle = _Handle(job["key"], 10_000 + len(self.handles), list(gpu_ids), log_path)
        self.handles[job["label"]] = handle
        return handle

    def poll(self, handle):
        return handle.code

    def terminate(self, handle):
        handle.code = 3

    kill = terminate


def test_engine_keeps_freed_gpus_for_a_waiting_two_gpu_job(store_path, qdb):
    from xaug.engine.queue.engine import Engine
    from xaug.store.jobs import load_job, mark_job_done

    executor = _ManualExecutor()
    engine = Engine(store_path, cpu_slots=1, gpus=[0, 1], executor=executor, poll_s=0.01)
    engine.start()
    try:
        submit(qdb, [fake("a", gpus=1), fake("b", gpus=1)])
        engine.step()
        assert set(executor.handles) == {"a", "b"}
        submit(qdb, [fake("wide", gpus=2)] + [fake(f"s{i}", gpus=1) for i in range(3)], study="t")

        def finish(label):
            mark_job_done(engine.db, executor.handles[label].key)
            executor.handles[label].code = 0
            engine.step()

        finish("a")  # GPU 0 is free, but kept for wide: s0, queued after wide, must not take it
        assert "s0" not in executor.handles and engine.reservation.holder is not None
        finish("b")
        assert executor.handles["wide"].gpu_ids == [0, 1] and "s0" not in executor.handles
        finish("wide")
        assert {executor.handles[s].gpu_ids[0] for s in ("s0", "s1")} == {0, 1}
        assert load_job(engine.db, executor.handles["wide"].key)["status"] == "done"
    finally:
        engine.request_stop()
        engine.shutdown()
