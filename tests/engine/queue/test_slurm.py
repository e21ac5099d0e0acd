"""The Slurm executor against a real Slurm (slurmctld + slurmd on this machine: `.ci/slurm-up.sh`).

Skipped here when no Slurm answers; in CI (CI=true) a missing Slurm fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest
from queue_helpers import fake, submit

SLURM_SETTINGS = {"resources": {"slurm": {"cpus_per_job": 1, "time_limit": "10", "max_jobs": 8}}}


def _slurm_problem() -> str | None:
    import importlib.util

    if importlib.util.find_spec("submitit") is None:
        return "submitit is not installed: pip install -e '.[slurm]'"
    if shutil.which("sbatch") is None:
        return "Slurm's sbatch is not installed (run .ci/slurm-up.sh as root: it installs and starts a one-node Slurm)"
    done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if done.returncode != 0 or not done.stdout.strip():
        return f"no Slurm controller answers ({done.stderr.strip()[:200]}); start one with .ci/slurm-up.sh"
    return None


@pytest.fixture(scope="module")
def slurm():
    """A live Slurm, or a skip (locally) / a failure (CI=true) that says why there is none."""
    problem = _slurm_problem()
    if problem and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the Slurm tests: {problem}")
    if problem:
        pytest.skip(problem)


def _squeue_state(slurm_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", slurm_id, "-o", "%T"], capture_output=True,
                         text=True).stdout.split()
    return out[0] if out else ""


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


class _EngineThread:
    """A Slurm-backed engine running in a thread until the study finishes (or the test stops it)."""

    def __init__(self, store_path, study: str = "s"):
        from xaug.engine.queue.engine import Engine
        from xaug.engine.queue.slurm import SlurmExecutor
        from xaug.store import open_store
        from xaug.store.jobs import study_finished

        self.executor = SlurmExecutor(store_path)
        self.engine = Engine(store_path, cpu_slots=8, gpus=[], executor=self.executor, poll_s=0.2, grace_s=20)
        self.watch = open_store(store_path)
        self.error: BaseException | None = None
        self.engine.start()

        def loop():
            try:
                self.engine.run(until=lambda: study_finished(self.watch, study))
            except BaseException as exc:  # reported by join()
                self.error = exc

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def job(self, key: str) -> dict:
        from xaug.store.jobs import load_job

        return load_job(self.watch, key)

    def join(self, timeout: float = 120) -> None:
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.engine.request_stop()
            self.thread.join(30)
            raise TimeoutError("the study did not finish on Slurm in time")
        if self.error:
            raise self.error


def test_a_tiny_study_runs_through_sbatch_as_job_arrays(slurm, qdb, store_path, fake_kinds):
    from xaug.store.jobs import submit_study

    first = fake("first", steps=2)
    arms = [fake(f"arm{i}", [first], steps=3, kind="fake") for i in range(3)]
    submit_study(qdb, "s", None, "name: s", {"name": "s", **SLURM_SETTINGS}, [first, *arms])
    run = _EngineThread(store_path)
    run.join()
    rows = {job.key: run.job(job.key) for job in [first, *arms]}
    assert {r["status"] for r in rows.values()} == {"done"}
    ids = [rows[a.key]["slurm_job_id"] for a in arms]
    assert len({i.split("_")[0] for i in ids}) == 1 and sorted(i.split("_")[1] for i in ids) == ["0", "1", "2"]
    assert "_" not in rows[first.key]["slurm_job_id"]  # a lone job is no array
    for job in [first, *arms]:  # results landed in the store, once per step
        steps = [r["step"] for r in qdb.query("SELECT step FROM metrics WHERE job_key = ? AND name = 'loss'"
                                              " ORDER BY step", [job.key])]
        assert steps == list(range(1, job.config["steps"] + 1))
    for slurm_id in [rows[first.key]["slurm_job_id"], *ids]:  # the outcome is journaled just before the end
        _wait(lambda: _squeue_state(slurm_id) == "COMPLETED", 30, f"squeue to show {slurm_id} COMPLETED")
    _wait(lambda: (run.executor.refresh_states(), {run.job(j.key)["slurm_state"] for j in arms} == {"COMPLETED"})[1],
          30, "the store to show the Slurm jobs COMPLETED")


def test_cancel_ends_cancelled_in_slurm_and_in_the_store(slurm, qdb, store_path, fake_kinds):
    from typer.testing import CliRunner

    from xaug.engine.cli import app, load_commands
    from xaug.store.jobs import submit_study

    load_commands()
    job = fake("long", steps=200, sleep=0.2)
    submit_study(qdb, "s", None, "name: s", {"name": "s", **SLURM_SETTINGS}, [job])
    run = _EngineThread(store_path)
    _wait(lambda: (run.job(job.key)["progress"] or 0) >= 2, 60, "the job to run on Slurm")
    slurm_id = run.job(job.key)["slurm_job_id"]
    assert _squeue_state(slurm_id) == "RUNNING"
    result = CliRunner().invoke(app, ["cancel", job.key[:12], "--store", str(store_path)])
    assert result.exit_code == 0, result.output
    run.join()
    row = run.job(job.key)
    assert row["status"] == "cancelled"
    assert _wait(lambda: _squeue_state(slurm_id) == "CANCELLED", 30, "Slurm to show the job CANCELLED")
    assert row["slurm_state"] in ("CANCELLED", "RUNNING", "COMPLETING")  # the store's last look before it ended
    assert row["progress"] < 200


@pytest.mark.parametrize("ignores_sigterm", [False, True], ids=["checkpoints-on-sigterm", "hard-killed"])
def test_a_worker_killed_on_its_node_is_requeued_and_resumes_without_duplicate_metrics(
        slurm, qdb, store_path, fake_kinds, ignores_sigterm):
    """`scancel --signal=KILL` cancels the job: Slurm sends SIGTERM, then SIGKILL after KillWait. A worker that
    checkpoints on SIGTERM goes back to the queue without an attempt; one that does not is killed, journals no
    outcome and counts an attempt. Either way the next run resumes from the checkpoint."""
    from xaug.store.jobs import submit_study

    steps = 40 if ignores_sigterm else 25
    job = fake("killed", steps=steps, sleep=0.2, ignore_stop=ignores_sigterm)
    submit_study(qdb, "s", None, "name: s", {"name": "s", **SLURM_SETTINGS}, [job])
    run = _EngineThread(store_path)
    _wait(lambda: (run.job(job.key)["progress"] or 0) >= 4, 60, "the job to reach step 4 on Slurm")
    first_id = run.job(job.key)["slurm_job_id"]
    subprocess.run(["scancel", "--signal=KILL", first_id], check=True)
    run.join(timeout=150)
    row = run.job(job.key)
    assert row["status"] == "done" and row["attempts"] == (1 if ignores_sigterm else 0)
    assert row["slurm_job_id"] != first_id
    assert _squeue_state(first_id) == "CANCELLED"
    starts = [int(s) for s in (store_path.parent / "q-artifacts" / "jobs" / "fake" / job.key[:16] / "starts.txt")
              .read_text().split()]
    assert len(starts) == 2 and starts[0] == 0 and starts[1] >= 4  # the second run resumed from the checkpoint
    count, distinct = qdb.execute("SELECT COUNT(*), COUNT(DISTINCT name || '/' || step) FROM metrics"
                                  " WHERE job_key = ?", [job.key]).fetchone()
    assert count == distinct == 2 * steps


def test_a_restarted_engine_watches_its_slurm_jobs_again_instead_of_running_them_twice(slurm, qdb, store_path,
                                                                                        fake_kinds):
    """The engine dies (no shutdown) while a job runs on Slurm; the next engine adopts it: one Slurm job, no
    attempt counted, every metric row once."""
    from xaug.engine.queue.engine import Engine
    from xaug.engine.queue.slurm import SlurmExecutor
    from xaug.store.jobs import load_job, release_engine, submit_study

    job = fake("outlives", steps=20, sleep=0.2)
    submit_study(qdb, "s", None, "name: s", {"name": "s", **SLURM_SETTINGS}, [job])
    first = Engine(store_path, cpu_slots=8, gpus=[], executor=SlurmExecutor(store_path), poll_s=0.2)
    first.start()

    def running_at_step_3():
        first.step()
        return (load_job(qdb, job.key)["progress"] or 0) >= 3

    _wait(running_at_step_3, 60, "the job to reach step 3 on Slurm")
    slurm_id = load_job(qdb, job.key)["slurm_job_id"]
    release_engine(first.db, first.pid, first.host)  # the first engine is gone without a word
    run = _EngineThread(store_path)
    assert job.key in run.engine.handles and run.engine.recovered == []
    run.join()
    row = run.job(job.key)
    assert row["status"] == "done" and row["attempts"] == 0 and row["slurm_job_id"] == slurm_id
    starts = (store_path.parent / "q-artifacts" / "jobs" / "fake" / job.key[:16] / "starts.txt").read_text().split()
    assert starts == ["0"]
    assert qdb.execute("SELECT COUNT(*), COUNT(DISTINCT name || '/' || step) FROM metrics WHERE job_key = ?",
                       [job.key]).fetchone() == (40, 40)


def test_a_stopped_engine_leaves_its_slurm_jobs_running_and_the_next_one_adopts_them(slurm, qdb, store_path,
                                                                                        fake_kinds, tmp_path):
    """`xaug-engine --executor slurm` gets SIGTERM while a job runs on Slurm: it exits at once (no grace wait),
    the Slurm job runs on and stays `running` in the store; the next engine adopts it: one Slurm job, one start,
    no attempt, every metric row once (a local engine would have checkpointed and requeued it instead)."""
    import signal
    import sys

    from xaug.store.jobs import load_engine, load_job, submit_study

    job = fake("outlives-stop", steps=25, sleep=0.2)
    submit_study(qdb, "s", None, "name: s", {"name": "s", **SLURM_SETTINGS}, [job])
    log = (tmp_path / "engine.log").open("w")
    engine = subprocess.Popen([sys.executable, "-m", "xaug.engine.daemon", "--store", str(store_path), "--executor",
                               "slurm", "--max-jobs", "8", "--poll", "0.2", "--grace", "60"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: (load_job(qdb, job.key)["progress"] or 0) >= 3, 60, "the job to reach step 3 on Slurm")
        slurm_id = load_job(qdb, job.key)["slurm_job_id"]
        stopped_at = time.monotonic()
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=30) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
    assert time.monotonic() - stopped_at < 15  # it did not wait out --grace for a job it leaves running
    assert "left 1 job(s) running" in (tmp_path / "engine.log").read_text()
    row = load_job(qdb, job.key)
    assert (row["status"], row["slurm_job_id"], row["attempts"]) == ("running", slurm_id, 0)
    assert _squeue_state(slurm_id) == "RUNNING" and load_engine(qdb) is None  # the lock was released
    journal = store_path.parent / "q-artifacts" / "journal" / job.key[:16] / "journal.jsonl"
    at_stop = len(journal.read_text().splitlines())
    _wait(lambda: len(journal.read_text().splitlines()) >= at_stop + 2, 30, "the job to journal on without an engine")
    run = _EngineThread(store_path)
    assert job.key in run.engine.handles and run.engine.recovered == []
    run.join()
    row = run.job(job.key)
    assert (row["status"], row["slurm_job_id"], row["attempts"]) == ("done", slurm_id, 0)
    starts = (store_path.parent / "q-artifacts" / "jobs" / "fake" / job.key[:16] / "starts.txt").read_text().split()
    assert starts == ["0"]
    assert qdb.execute("SELECT COUNT(*), COUNT(DISTINCT name || '/' || step) FROM metrics WHERE job_key = ?",
                       [job.key]).fetchone() == (50, 50)


def test_gpu_jobs_of_an_engine_without_gpus_get_their_gpus_from_slurm(slurm, qdb, store_path, fake_kinds):
    """The engine's machine has no GPU; Slurm's node has two (slurm-up.sh's stand-ins). A 2-GPU job is submitted
    with --gpus-per-node=2 and runs; one asking for 3 is refused by Slurm, and fails with Slurm's reason."""
    from xaug.store.jobs import submit_study

    wide, too_wide = fake("wide", gpus=2, steps=2), fake("too-wide", gpus=3, max_attempts=1)
    submit_study(qdb, "s", None, "name: s", {"name": "s", **SLURM_SETTINGS}, [wide, too_wide])
    run = _EngineThread(store_path)
    assert run.engine.gpus == []
    run.join(timeout=60)
    row = run.job(wide.key)
    assert row["status"] == "done" and row["gpus"] == ""  # no local GPU claimed
    fields = dict(item.split("=", 1) for item in subprocess.run(
        ["scontrol", "show", "job", "-o", row["slurm_job_id"]], capture_output=True, text=True).stdout.split()
        if "=" in item)
    assert fields["TresPerNode"] == "gres:gpu:2" and fields["NumNodes"] == "1"
    refused = run.job(too_wide.key)
    assert refused["status"] == "failed" and "node configuration is not available" in refused["error"]


MICRO_RECIPE = """
name: micro
dataset:
  source: phantom
  image_size: 32
  phantom: {scale: 0.12, seed: 0, native_size: 32}
splits: {folds: 2, validation_fraction: 0.2, seed: 0, run_folds: [0]}
classifiers:
  - {name: tiny, model: test_resnet, epochs: 1, batch_size: 16, lr: 0.002}
generators:
  - name: gan
    model: gan
    params: {resolution: 32, channels_base: 64, channels_max: 16, z_dim: 16, w_dim: 16, mapping_layers: 1,
             batch_size: 4, steps: 3, grid_every: 3, checkpoint_every: 3, sample_batch_size: 16}
amounts: [0, 4]
duplicate_control: false
quality: {n_per_class: 4, features: pixels, kid_subset_size: 2, ms_ssim: false}
resources:
  device: cpu
  executor: slurm
  slurm: {cpus_per_job: 1, time_limit: "10", max_jobs: 8}
"""


@pytest.mark.slow
def test_a_real_micro_study_runs_on_slurm_with_xaug_run(slurm, tmp_path):
    """Every real job kind on Slurm but analyse (which runs on the engine's host): prepare_data, a GAN, its
    samples read back by image_quality and train_classifier through their snapshots (2.5 min on 2 shared cores)."""
    from typer.testing import CliRunner

    from xaug.engine.cli import app, load_commands
    from xaug.store import open_store

    load_commands()
    recipe = tmp_path / "micro.yaml"
    recipe.write_text(MICRO_RECIPE)
    store = tmp_path / "m.db"
    result = CliRunner().invoke(app, ["run", str(recipe), "--store", str(store)])
    assert result.exit_code == 0, result.output
    db = open_store(store)
    jobs = list(db.query("SELECT kind, status, slurm_job_id FROM jobs"))
    assert {j["status"] for j in jobs} == {"done"} and len(jobs) == 9
    assert all(j["slurm_job_id"] for j in jobs if j["kind"] != "analyse")
    assert db.execute("SELECT COUNT(*) FROM artifacts WHERE kind = 'sample'").fetchone()[0] >= 4 * 5
    assert db.execute("SELECT COUNT(*) FROM quality").fetchone()[0] > 0
    assert db.execute("SELECT COUNT(DISTINCT job_key) FROM class_metrics").fetchone()[0] == 2


def test_a_job_that_sbatch_refuses_fails_with_slurms_reason(slurm, qdb, store_path, fake_kinds):
    from xaug.store.jobs import submit_study

    job = fake("nowhere", max_attempts=2)
    settings = {"resources": {"slurm": {**SLURM_SETTINGS["resources"]["slurm"], "partition": "no-such-partition"}}}
    submit_study(qdb, "s", None, "name: s", {"name": "s", **settings}, [job])
    run = _EngineThread(store_path)
    run.join(timeout=60)
    row = run.job(job.key)
    assert row["status"] == "failed" and row["attempts"] == 2
    assert row["error"].startswith("sbatch failed:") and "partition" in row["error"].lower()


def test_a_job_warned_of_its_time_limit_checkpoints_and_is_submitted_again(slurm, qdb, store_path, fake_kinds):
    """Slurm's SIGUSR2 before the time limit (sbatch --signal, sent here by hand): the worker checkpoints and
    journals 'interrupted'; the engine submits it again (no attempt counted) and it resumes."""
    from xaug.store.jobs import submit_study

    job = fake("long-run", steps=20, sleep=0.2)
    submit_study(qdb, "s", None, "name: s", {"name": "s", **SLURM_SETTINGS}, [job])
    run = _EngineThread(store_path)
    _wait(lambda: (run.job(job.key)["progress"] or 0) >= 3, 60, "the job to reach step 3 on Slurm")
    first_id = run.job(job.key)["slurm_job_id"]
    subprocess.run(["scancel", "--signal=USR2", first_id], check=True)
    run.join(timeout=120)
    row = run.job(job.key)
    assert row["status"] == "done" and row["attempts"] == 0 and row["slurm_job_id"] != first_id
    _wait(lambda: _squeue_state(first_id) == "COMPLETED", 30, "the warned Slurm job to end by itself")
    starts = [int(s) for s in (store_path.parent / "q-artifacts" / "jobs" / "fake" / job.key[:16] / "starts.txt")
              .read_text().split()]
    assert len(starts) == 2 and starts[1] >= 3
    assert qdb.execute("SELECT COUNT(*), COUNT(DISTINCT name || '/' || step) FROM metrics WHERE job_key = ?",
                       [job.key]).fetchone() == (40, 40)
