"""Many small jobs on one big GPU: jobs with a memory estimate share a GPU up to its memory; the reservation of
policy.py still lets a wide job through (shared GPUs are drained for it) and never deadlocks."""

from __future__ import annotations

import pytest
from queue_helpers import ManualExecutor, fake, submit

from xaug.engine.queue.policy import GpuReservation, GpuSlot, memory_estimate_mb

GB = 1024.0


def test_jobs_with_declared_memory_share_a_gpu_up_to_its_memory():
    policy = GpuReservation()
    gpus = [GpuSlot(0, 80 * GB, claimed_mb=60 * GB, jobs=6)]
    assert policy.gpus_for("small", 1, gpus, memory_mb=10 * GB) == [0]
    assert policy.gpus_for("big", 1, gpus, memory_mb=30 * GB) is None  # 60 + 30 > 80
    assert policy.gpus_for("whole", 1, [GpuSlot(1, 80 * GB)], memory_mb=None) == [1]  # an idle GPU takes anyone


def test_a_gpu_held_whole_or_of_unknown_memory_is_never_shared():
    policy = GpuReservation()
    assert policy.gpus_for("a", 1, [GpuSlot(0, 80 * GB, jobs=1, whole=True)], memory_mb=1 * GB) is None
    assert policy.gpus_for("b", 1, [GpuSlot(0, None, claimed_mb=1 * GB, jobs=1)], memory_mb=1 * GB) is None
    assert policy.gpus_for("c", 1, [GpuSlot(0, 80 * GB, claimed_mb=1 * GB, jobs=1)], memory_mb=None) is None


def test_a_small_job_goes_to_the_least_busy_gpu():
    policy = GpuReservation()
    gpus = [GpuSlot(0, 80 * GB, 20 * GB, 2), GpuSlot(1, 80 * GB, 10 * GB, 1), GpuSlot(2, 80 * GB, 30 * GB, 1)]
    assert policy.gpus_for("s", 1, gpus, memory_mb=5 * GB) == [1]


def test_a_wide_job_drains_just_enough_shared_gpus_and_small_jobs_use_the_rest():
    policy = GpuReservation()
    gpus = [GpuSlot(g, 80 * GB, (g + 1) * 10 * GB, g + 1) for g in range(4)]  # all four shared, GPU 0 least loaded
    assert policy.gpus_for("wide", 2, gpus) is None
    assert policy.holder == "wide" and policy.draining == [0, 1]
    assert policy.gpus_for("small", 1, gpus, memory_mb=5 * GB) == [2]  # GPUs 0 and 1 take no new job
    drained = [GpuSlot(0, 80 * GB), GpuSlot(1, 80 * GB)] + gpus[2:]
    assert policy.gpus_for("small", 1, drained, memory_mb=5 * GB) == [2]  # idle now, but still kept for wide
    assert policy.gpus_for("wide", 2, drained) == [0, 1] and policy.holder is None and policy.draining == []


def test_no_gpu_is_drained_when_whole_held_gpus_will_free_up_on_their_own():
    policy = GpuReservation()
    gpus = [GpuSlot(0, 80 * GB, jobs=1, whole=True), GpuSlot(1, 80 * GB, 10 * GB, 1)]
    assert policy.gpus_for("wide", 1, gpus) is None and policy.holder == "wide" and policy.draining == []
    assert policy.gpus_for("small", 1, gpus, memory_mb=5 * GB) == [1]  # packing goes on beside the drain
    freed = [GpuSlot(0, 80 * GB), GpuSlot(1, 80 * GB, 15 * GB, 2)]
    assert policy.gpus_for("small", 1, freed, memory_mb=5 * GB) == [1]  # the idle GPU 0 is reserved for wide
    assert policy.gpus_for("wide", 1, freed) == [0]


def test_a_gpu_of_unknown_memory_running_a_small_job_is_never_drained_it_frees_on_its_own():
    policy = GpuReservation()
    gpus = [GpuSlot(0, None, 4 * GB, 1), GpuSlot(1, 80 * GB, 10 * GB, 1)]
    assert policy.gpus_for("wide", 1, gpus) is None and policy.draining == []
    assert policy.gpus_for("small", 1, gpus, memory_mb=4 * GB) == [1]


def test_a_blocked_small_job_drains_one_gpu_until_it_fits():
    policy = GpuReservation()
    full = [GpuSlot(0, 80 * GB, 75 * GB, 5), GpuSlot(1, 80 * GB, 78 * GB, 6)]
    assert policy.gpus_for("first", 1, full, memory_mb=10 * GB) is None and policy.draining == [0]
    assert policy.gpus_for("tiny", 1, full, memory_mb=1 * GB) == [1]  # a smaller job still backfills GPU 1
    room = [GpuSlot(0, 80 * GB, 60 * GB, 4), full[1]]
    assert policy.gpus_for("later", 1, room, memory_mb=10 * GB) is None  # GPU 0's room is kept for `first`
    assert policy.gpus_for("first", 1, room, memory_mb=10 * GB) == [0]


def test_a_measured_peak_is_padded_and_a_declaration_wins():
    assert memory_estimate_mb(None, None) is None
    assert memory_estimate_mb(6 * GB, 1 * GB) == 6 * GB
    estimate = memory_estimate_mb(None, 4 * GB)
    assert estimate > 4 * GB * 1.1 and estimate < 8 * GB


# --- the engine: fake GPUs with declared memory ----------------------------------------------------------------


@pytest.fixture
def engine_on(store_path):
    """An engine on fake GPUs (ids -> MiB) whose workers the test finishes by hand."""
    from xaug.engine.queue.engine import Engine

    engines = []

    def make(memory: dict[int, float]):
        executor = ManualExecutor()
        engine = Engine(store_path, cpu_slots=1, gpus=list(memory), gpu_memory_mb=memory, executor=executor,
                        poll_s=0.01)
        engine.start()
        engines.append(engine)
        return engine, executor

    yield make
    for engine in engines:
        engine.request_stop()
        engine.shutdown()


def test_the_engine_runs_as_many_small_jobs_on_one_gpu_as_its_memory_holds(engine_on, qdb):
    engine, executor = engine_on({0: 80 * GB})
    submit(qdb, [fake(f"c{i}", gpus=1, gpu_memory_mb=9 * GB) for i in range(10)])
    engine.step()
    assert sorted(executor.handles) == [f"c{i}" for i in range(8)]  # 8 x 9 GB = 72 GB; a 9th would need 81
    assert {g for h in executor.handles.values() for g in h.gpu_ids} == {0}
    slot = engine.gpu_slots()[0]
    assert slot.jobs == 8 and slot.claimed_mb == 72 * GB and not slot.whole
    executor.finish(engine, "c0")
    assert "c8" in executor.handles and "c9" not in executor.handles
    assert engine.gpu_slots()[0].claimed_mb == 72 * GB


def test_a_job_without_memory_waits_for_the_gpu_to_empty_and_then_holds_it_whole(engine_on, qdb):
    engine, executor = engine_on({0: 80 * GB})
    submit(qdb, [fake("s0", gpus=1, gpu_memory_mb=10 * GB), fake("whole", gpus=1),
                 fake("s1", gpus=1, gpu_memory_mb=10 * GB)])
    engine.step()
    # `whole` is blocked and holds the reservation: s1, queued after it, may not join the shared GPU it waits for
    assert sorted(executor.handles) == ["s0"] and engine.reservation.draining == [0]
    executor.finish(engine, "s0")
    assert "whole" in executor.handles and "s1" not in executor.handles and engine.gpu_slots()[0].whole
    executor.finish(engine, "whole")
    assert "s1" in executor.handles


def test_a_stream_of_small_jobs_does_not_starve_a_two_gpu_job(engine_on, qdb):
    engine, executor = engine_on({0: 80 * GB, 1: 80 * GB})
    submit(qdb, [fake(f"a{i}", gpus=1, gpu_memory_mb=30 * GB) for i in range(4)])
    engine.step()
    assert len(executor.handles) == 4  # two per GPU
    submit(qdb, [fake("wide", gpus=2)] + [fake(f"b{i}", gpus=1, gpu_memory_mb=30 * GB) for i in range(4)],
           study="t")
    engine.step()
    assert engine.reservation.holder is not None and sorted(engine.reservation.draining) == [0, 1]
    for i in range(3):
        executor.finish(engine, f"a{i}")
        assert "wide" not in executor.handles and not any(f"b{j}" in executor.handles for j in range(4))
    executor.finish(engine, "a3")
    assert executor.handles["wide"].gpu_ids == [0, 1]
    executor.finish(engine, "wide")
    assert all(f"b{j}" in executor.handles for j in range(4))  # packed again, two per GPU


def test_measured_peaks_let_later_jobs_of_the_group_share(engine_on, qdb):
    from xaug.store.jobs import record_peak_gpu_memory

    engine, executor = engine_on({0: 80 * GB})
    submit(qdb, [fake(f"m{i}", gpus=1, memory_group="train_classifier:abc") for i in range(4)])
    engine.step()
    assert sorted(executor.handles) == ["m0"]  # nothing measured yet: the first runs alone
    record_peak_gpu_memory(engine.db, executor.handles["m0"].key, 10 * GB)
    executor.finish(engine, "m0")
    assert sorted(executor.handles) == ["m0", "m1", "m2", "m3"]  # ~12.3 GB each now: all three fit together
    assert engine.gpu_slots()[0].jobs == 3


@pytest.mark.gpu
def test_the_engine_runs_jobs_side_by_side_on_one_real_gpu(store_path, qdb, fake_kinds):
    """On a CUDA machine: three jobs declared at 2 GB share GPU 0 (their run times overlap), each worker records its
    peak, and the GPU's memory is found without torch (nvidia-ml-py or nvidia-smi)."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from queue_helpers import run_engine

    from xaug.store.jobs import load_job

    jobs = [fake(f"g{i}", gpus=1, gpu_memory_mb=2 * GB, cuda_mb=256, steps=4, sleep=1.0) for i in range(3)]
    submit(qdb, jobs)
    engine = run_engine(store_path, gpus=[0], timeout=120)
    assert engine.gpu_memory.get(0, 0) > 4 * GB
    rows = [load_job(qdb, job.key) for job in jobs]
    assert [r["status"] for r in rows] == ["done"] * 3 and all(r["gpus"] == "0" for r in rows), rows
    assert max(r["started_at"] for r in rows) < min(r["ended_at"] for r in rows)  # all three ran at once
    assert all(r["peak_gpu_memory_mb"] >= 256 for r in rows)
