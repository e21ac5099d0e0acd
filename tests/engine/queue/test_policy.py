"""The GPU policy: a job needing N GPUs gets them without being starved by smaller jobs, which backfill the rest."""

from __future__ import annotations

from queue_helpers import ManualExecutor, fake, submit

from xaug.engine.queue.policy import GpuReservation, idle_gpus


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_free_gpus_go_to_whoever_fits_when_nobody_waits():
    policy = GpuReservation()
    assert policy.gpus_for("a", 1, idle_gpus(0, 1, 2)) == [0]
    assert policy.gpus_for("b", 2, idle_gpus(1, 2)) == [1, 2]
    assert policy.holder is None and not policy.tracking


def test_a_blocked_wide_job_reserves_freed_gpus_and_smaller_jobs_backfill_only_the_rest():
    policy = GpuReservation()
    # one of four GPUs free: wide blocks and holds the reservation
    assert policy.gpus_for("wide", 3, idle_gpus(2)) is None
    assert policy.holder == "wide" and policy.reserved(idle_gpus(2)) == [2]
    assert policy.gpus_for("small", 1, idle_gpus(2)) is None  # the freed GPU is kept for wide
    assert policy.gpus_for("small", 1, idle_gpus(1, 2)) is None  # still short of 3: both kept
    assert policy.gpus_for("small", 1, idle_gpus(0, 1, 2, 3)) == [3]  # beyond wide's 3: backfilled
    assert policy.gpus_for("wide", 3, idle_gpus(0, 1, 2)) == [0, 1, 2]  # enough: wide starts, the reservation ends
    assert policy.holder is None and policy.gpus_for("small", 1, idle_gpus(3)) == [3]


def test_only_one_holder_at_a_time():
    policy = GpuReservation()
    assert policy.gpus_for("w1", 2, idle_gpus(0)) is None and policy.gpus_for("w2", 2, idle_gpus(0)) is None
    assert policy.holder == "w1"  # w2 cannot hold GPU 0 too: no two half-reserved wide jobs (deadlock)
    assert policy.gpus_for("w2", 2, idle_gpus(0, 1, 2, 3)) == [2, 3]  # w2 fits in what w1 does not need
    assert policy.gpus_for("w1", 2, idle_gpus(0, 1)) == [0, 1]


def test_reservation_starts_only_after_waiting_reserve_after_s():
    clock = Clock()
    policy = GpuReservation(reserve_after_s=60, clock=clock)
    assert policy.gpus_for("wide", 2, idle_gpus(0)) is None and policy.holder is None
    assert policy.gpus_for("small", 1, idle_gpus(0)) == [0]  # before 60 s smaller jobs use every free GPU
    clock.t = 61
    assert policy.gpus_for("wide", 2, idle_gpus(1)) is None and policy.holder == "wide"
    assert policy.gpus_for("small", 1, idle_gpus(1)) is None


def test_a_holder_that_left_the_queue_releases_its_reservation():
    policy = GpuReservation()
    policy.gpus_for("wide", 2, idle_gpus(0))
    policy.keep_only(["small"])  # wide was cancelled
    assert policy.holder is None and policy.gpus_for("small", 1, idle_gpus(0)) == [0] and not policy.tracking


# --- the hook in the engine: a stream of 1-GPU jobs does not starve a 2-GPU job ---------------------------------


def test_engine_keeps_freed_gpus_for_a_waiting_two_gpu_job(store_path, qdb):
    from xaug.engine.queue.engine import Engine
    from xaug.store.jobs import load_job

    executor = ManualExecutor()
    engine = Engine(store_path, cpu_slots=1, gpus=[0, 1], executor=executor, poll_s=0.01)
    engine.start()
    try:
        submit(qdb, [fake("a", gpus=1), fake("b", gpus=1)])
        engine.step()
        assert set(executor.handles) == {"a", "b"}
        submit(qdb, [fake("wide", gpus=2)] + [fake(f"s{i}", gpus=1) for i in range(3)], study="t")

        executor.finish(engine, "a")  # GPU 0 is free, but kept for wide: s0, queued after wide, must not take it
        assert "s0" not in executor.handles and engine.reservation.holder is not None
        executor.finish(engine, "b")
        assert executor.handles["wide"].gpu_ids == [0, 1] and "s0" not in executor.handles
        executor.finish(engine, "wide")
        assert {executor.handles[s].gpu_ids[0] for s in ("s0", "s1")} == {0, 1}
        assert load_job(engine.db, executor.handles["wide"].key)["status"] == "done"
    finally:
        engine.request_stop()
        engine.shutdown()
