"""Crash recovery: a worker or the engine killed with SIGKILL, SIGTERM to the engine, two engines on one store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from queue_helpers import fake, run_engine, submit
from xaug.store.errors import EngineError
from xaug.engine.queue.engine import Engine
from xaug.store import artifact_root
from xaug.store import jobs as q
from xaug.store.metrics import load_metrics


def _work(store_path, job):
    return artifact_root(store_path) / "jobs" / job.kind / job.key[:16]


def _starts(store_path, job):
    return [int(x) for x in (_work(store_path, job) / "starts.txt").read_text().split()]


def _assert_counted_once(db, job, steps):
    for name in ("loss", "step_seen"):
        rows = load_metrics(db, job.key, name)
        assert [r["step"] for r in rows] == list(range(1, steps + 1))
    assert [r["value"] for r in load_metrics(db, job.key, "step_seen")] == [float(s) for s in range(1, steps + 1)]


def _start_daemon(store_path, slots=1):
    return subprocess.Popen([sys.executable, "-m", "xaug.engine.daemon", "--store", str(store_path), "--gpus", "none",
                             "--cpu-slots", str(slots), "--poll", "0.05", "--grace", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def _progress_at_least(db, jobs, n):
    return all((row := q.load_job(db, j.key))["status"] == "running" and row["progress"] >= n for j in jobs)


def test_sigkill_of_a_worker_resumes_from_its_checkpoint(store_path, qdb, fake_kinds):
    job = fake("train", steps=12, sleep=0.05)
    submit(qdb, [job])
    killed = []

    def on_step(engine):
        row = q.load_job(engine.db, job.key)
        if not killed and row["status"] == "running" and row["progress"] >= 4:
            os.kill(row["pid"], signal.SIGKILL)
            killed.append(int(row["progress"]))

    engine = Engine(store_path, cpu_slots=1, gpus=[], poll_s=0.05, grace_s=10)
    engine.run(until=lambda: q.study_finished(qdb, "s"), on_step=on_step)
    row = q.load_job(qdb, job.key)
    assert row["status"] == "done" and row["attempts"] == 1 and killed
    starts = _starts(store_path, job)
    assert starts[0] == 0 and len(starts) == 2 and starts[1] >= killed[0]
    _assert_counted_once(qdb, job, 12)
    assert row["exit_code"] == 0 and row["error"] is None


def test_sigkill_of_the_engine_then_restart_recovers_every_job(store_path, qdb, fake_kinds):
    jobs = [fake("x", steps=30, sleep=0.1), fake("y", steps=30, sleep=0.1)]
    tail = fake("z", jobs)
    submit(qdb, [*jobs, tail])
    daemon = _start_daemon(store_path, slots=2)
    try:
        _wait(lambda: _progress_at_least(qdb, jobs, 3), what="both jobs to make progress")
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert q.load_engine(qdb) is not None  # the dead engine left its lock behind
    run_engine(store_path, cpu_slots=2, timeout=90)
    for job in jobs:
        row = q.load_job(qdb, job.key)
        assert row["status"] == "done"
        starts = _starts(store_path, job)
        assert starts[0] == 0 and starts[-1] >= 3
        _assert_counted_once(qdb, job, 30)
    assert q.load_job(qdb, tail.key)["status"] == "done"
    assert q.load_engine(qdb) is None


def test_sigterm_checkpoints_requeues_and_exits_cleanly(store_path, qdb, fake_kinds):
    job = fake("long", steps=400, sleep=0.05)
    submit(qdb, [job])
    daemon = _start_daemon(store_path)
    try:
        _wait(lambda: _progress_at_least(qdb, [job], 2), what="progress")
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, out
    row = q.load_job(qdb, job.key)
    assert row["status"] == "queued" and row["attempts"] == 0
    step = json.loads((_work(store_path, job) / "ckpt.json").read_text())["step"]
    assert 2 <= step < 400 and len(load_metrics(qdb, job.key, "loss")) == step
    assert q.load_engine(qdb) is None


def test_a_second_engine_on_the_same_store_is_refused(store_path, qdb, fake_kinds):
    daemon = _start_daemon(store_path)
    try:
        _wait(lambda: q.load_engine(qdb) is not None, what="the first engine")
        with pytest.raises(EngineError, match="another engine .* already runs"):
            Engine(store_path, gpus=[]).start()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
    assert daemon.returncode == 0


def test_a_sigterm_while_the_engine_takes_its_lock_stops_it_cleanly(store_path):
    # The TERM arrives right after the engine took the store's lock, before its loop: it must stop cleanly (exit 0,
    # lock dropped), not die of the default action (exit -15) with its row left behind.
    code = (
        "import os, signal\n"
        "from xaug.engine.queue.engine import Engine\n"
        "engine = Engine(%r, gpus=[], poll_s=0.05)\n"
        "took_lock = engine._start\n"
        "def start_then_term():\n"
        "    took_lock()\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "engine._start = start_then_term\n"
        "engine.run()\n"
        "print('stopped', engine.stopping)\n" % str(store_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "stopped True"
    from xaug.store import open_store

    assert q.load_engine(open_store(store_path)) is None


def test_scheduler_does_not_import_torch_or_textual():
    code = ("import sys, xaug.engine.queue.engine, xaug.engine.queue.worker, xaug.engine.daemon, xaug.engine.planner;"
            " print(sorted(m for m in ('torch', 'textual', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_an_engine_whose_store_fails_stops_its_workers_and_says_why(store_path, qdb, fake_kinds):
    import psutil
    from xaug.store.errors import StoreError

    slow = fake("slow", steps=400, sleep=0.05)
    submit(qdb, [slow])
    engine = Engine(store_path, cpu_slots=1, gpus=[], poll_s=0.05, grace_s=5)
    workers = []

    def store_turns_read_only(engine):  # SQLite acts out a store made read-only under the engine
        if engine.handles and not workers:
            workers.extend(handle.pid for handle in engine.handles.values())
            engine.db.execute("PRAGMA query_only = 1")

    with pytest.raises(StoreError, match="is read-only"):
        engine.run(until=lambda: q.study_finished(qdb, "s"), on_step=store_turns_read_only)

    def alive(pid):
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    assert workers and not any(alive(pid) for pid in workers)
    # Whether or not its worker could still record the stop, the next engine finds the job queued to resume.
    again = Engine(store_path, cpu_slots=1, gpus=[], poll_s=0.05, grace_s=5)
    again.start()
    try:
        assert q.load_job(qdb, slow.key)["status"] == "queued" and q.load_engine(qdb)["pid"] == os.getpid()
    finally:
        again.shutdown()
