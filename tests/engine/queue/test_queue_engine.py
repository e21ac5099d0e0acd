"""The engine with real worker processes and fake jobs: order, GPUs, failures, retry, cancel, logs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from queue_helpers import fake, run_engine, submit
from xaug.store import artifact_root
from xaug.store import jobs as q
from xaug.store.metrics import load_metrics


def _work(store_path, job):
    return artifact_root(store_path) / "jobs" / job.kind / job.key[:16]


def test_jobs_run_in_dependency_and_priority_order(store_path, qdb, fake_kinds):
    a = fake("a")
    b = fake("b", [a], priority=9)
    c = fake("c", priority=1)
    d = fake("d", [b, c])
    submit(qdb, [a, b, c, d])
    run_engine(store_path, cpu_slots=1)
    order = (artifact_root(store_path) / "order.txt").read_text().split()
    assert order == ["c", "a", "b", "d"]
    rows = q.list_jobs(qdb, study="s")
    assert {r["status"] for r in rows} == {"done"}
    for row in rows:
        assert row["exit_code"] == 0 and row["pid"] and row["host"] and row["started_at"] <= row["ended_at"]
        assert stat.S_IMODE(os.stat(row["log_path"]).st_mode) == 0o600
    assert [m["step"] for m in load_metrics(qdb, a.key, "loss")] == [1, 2, 3]
    env = json.loads((_work(store_path, d) / "env.json").read_text())
    assert env["deps"] == sorted([b.key, c.key]) and env["device"] == "cpu"


def test_gpu_jobs_get_their_gpus_visible(store_path, qdb, fake_kinds):
    two = fake("two", gpus=2, kind="fake_gpu")
    cpu = fake("cpu")
    submit(qdb, [two, cpu])
    run_engine(store_path, cpu_slots=1, gpus=[0, 1])
    env = json.loads((_work(store_path, two) / "env.json").read_text())
    assert {k: env[k] for k in ("device", "cuda_visible_devices", "order", "deps")} == {
        "device": "cuda", "cuda_visible_devices": "0,1", "order": "PCI_BUS_ID", "deps": []}
    assert q.load_job(qdb, two.key)["gpus"] == "0,1"
    env = json.loads((_work(store_path, cpu) / "env.json").read_text())
    assert env["device"] == "cpu" and env["cuda_visible_devices"] == ""


def test_failure_is_retried_then_reported_with_its_error(store_path, qdb, fake_kinds):
    flaky = fake("flaky", fail_once=True, max_attempts=2)
    broken = fake("broken", fail=True, max_attempts=1)
    after = fake("after", [broken])
    submit(qdb, [flaky, broken, after])
    run_engine(store_path, cpu_slots=2)
    row = q.load_job(qdb, flaky.key)
    assert row["status"] == "done" and row["attempts"] == 1
    row = q.load_job(qdb, broken.key)
    assert row["status"] == "failed" and row["error"] == "RuntimeError: fake failure in broken"
    log = open(row["log_path"]).read()
    assert "Traceback" in log and "fake failure in broken" in log
    assert q.list_jobs(qdb, study="s", status="blocked")[0]["key"] == after.key
    assert q.retry_job(qdb, broken.key)
    assert q.load_job(qdb, broken.key)["status"] == "queued"


def test_a_data_error_fails_at_once_while_a_killed_worker_is_retried(store_path, qdb, fake_kinds):
    bad = fake("bad", data_error=True, max_attempts=3)
    after = fake("after", [bad])
    killed = fake("killed", kill_once=True, max_attempts=3)
    submit(qdb, [bad, after, killed])
    run_engine(store_path, cpu_slots=1)
    row = q.load_job(qdb, bad.key)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert row["error"] == "DataError: bad.png is not an image"
    assert q.load_job(qdb, after.key)["status"] == "blocked"
    row = q.load_job(qdb, killed.key)
    assert (row["status"], row["attempts"]) == ("done", 1)
    assert open(row["log_path"]).read().count(" start fake ") == 2  # killed once, then run again


def test_cancel_of_a_running_job_checkpoints_and_stops_it(store_path, qdb, fake_kinds):
    slow = fake("slow", steps=200, sleep=0.05)
    submit(qdb, [slow])

    def on_step(engine):
        row = q.load_job(engine.db, slow.key)
        if row["status"] == "running" and row["progress"] >= 2 and not row["cancel_requested"]:
            q.cancel_job(engine.db, slow.key)

    from xaug.engine.queue.engine import Engine

    engine = Engine(store_path, cpu_slots=1, gpus=[], poll_s=0.05, grace_s=10)
    engine.run(until=lambda: q.study_finished(qdb, "s"), on_step=on_step)
    row = q.load_job(qdb, slow.key)
    assert row["status"] == "cancelled" and row["attempts"] == 0
    ckpt = json.loads((_work(store_path, slow) / "ckpt.json").read_text())["step"]
    assert 2 <= ckpt < 200
    assert len(load_metrics(qdb, slow.key, "loss")) == ckpt


def test_worker_module_runs_as_a_script(store_path, fake_kinds):
    out = subprocess.run([sys.executable, "-m", "xaug.engine.queue.worker", "--store", str(store_path),
                          "--job", "nope"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no job nope" in out.stderr
    missing = store_path.parent / "missing.db"
    out = subprocess.run([sys.executable, "-m", "xaug.engine.queue.worker", "--store", str(missing), "--job", "x"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no store at" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not missing.exists()  # a worker never creates a store
    out = subprocess.run([sys.executable, "-m", "xaug.engine.queue.worker", "--store", str(store_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Missing option '--job'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("start", ["forkserver", "exec"])
def test_workers_start_forked_from_a_preloaded_parent_or_as_a_fresh_process(store_path, qdb, fake_kinds, start):
    from xaug.engine.queue.engine import Engine, worker_process
    from xaug.engine.queue.executor import LocalExecutor

    slow = fake("slow", steps=100, sleep=0.05)
    submit(qdb, [slow])
    seen = {}

    def on_step(engine):
        row = q.load_job(engine.db, slow.key)
        if row["status"] == "running" and row["progress"] >= 1 and "proc" not in seen:
            seen["proc"] = worker_process(row["pid"], slow.key)  # what crash recovery uses to find a worker
            seen["engine_pid"] = os.getpid()
            q.cancel_job(engine.db, slow.key)

    executor = LocalExecutor(store_path, cpu_threads=1, start=start)
    engine = Engine(store_path, cpu_slots=1, gpus=[], executor=executor, poll_s=0.05, grace_s=10)
    engine.run(until=lambda: q.study_finished(qdb, "s"), on_step=on_step)
    assert seen["proc"] is not None and seen["proc"].pid != seen["engine_pid"]
    assert q.load_job(qdb, slow.key)["status"] == "cancelled"
    env = json.loads((_work(store_path, slow) / "env.json").read_text())
    # Forked workers find torch imported by the fork server's preload; a fresh `python -m` worker does not.
    assert env["torch_preloaded"] is (start == "forkserver")
    assert env["threads"] == "1" and env["device"] == "cpu"
    log = open(q.load_job(qdb, slow.key)["log_path"]).read()
    assert "worker pid" in log and "stopped after a checkpoint" in log
