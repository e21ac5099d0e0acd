"""`resources.slurm` in a recipe and the sbatch parameters it gives each job kind (no Slurm needed)."""

from __future__ import annotations

import pytest


def _settings(**slurm):
    from xaug.engine.recipe.schema import ResourcesConfig

    return ResourcesConfig(executor="slurm", slurm=slurm).model_dump()["slurm"]


def test_per_kind_resources_override_the_defaults_and_gpus_follow_the_job():
    from xaug.engine.queue.slurm import sbatch_parameters

    settings = _settings(partition="gpu", account="proj", qos="high", time_limit="1-02:00:00", cpus_per_job=6,
                         mem="32G", kinds={"train_classifier": {"gpus": 2, "cpus": 12, "time_limit": "90"}},
                         extra_sbatch={"constraint": "a100"})
    classifier = sbatch_parameters(settings, {"kind": "train_classifier", "gpus_needed": 1})
    assert (classifier["gpus_per_node"], classifier["cpus_per_task"], classifier["time"]) == (2, 12, 90)
    assert (classifier["partition"], classifier["account"], classifier["qos"], classifier["mem"]) == \
        ("gpu", "proj", "high", "32G")
    assert classifier["additional_parameters"] == {"no-requeue": True, "constraint": "a100"}
    sample = sbatch_parameters(settings, {"kind": "sample", "gpus_needed": 1})
    assert (sample["gpus_per_node"], sample["cpus_per_task"], sample["time"]) == (1, 6, 26 * 60)
    assert "gpus_per_node" not in sbatch_parameters(settings, {"kind": "prepare_data", "gpus_needed": 0})


@pytest.mark.parametrize(("slurm", "complaint"), [
    ({"time_limit": "4h"}, "is not a Slurm time limit"),
    ({"kinds": {"train_clasifier": {"gpus": 1}}}, "train_classifier"),
    ({"extra_sbatch": {"array": "0-3"}}, "set by xaug itself"),
    ({"extra_sbatch": {"--constraint": "a100"}}, "not an sbatch long option name"),
    ({"partiton": "gpu"}, "partiton"),
    ({"local_kinds": ["prepare_data"]}, "analyse must stay"),
])
def test_bad_slurm_settings_fail_with_what_to_write(slurm, complaint):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=complaint):
        _settings(**slurm)


def test_time_limits_in_minutes():
    from xaug.engine.recipe.schema import time_limit_minutes

    assert [time_limit_minutes(t) for t in ("90", "04:00:00", "1-12:00:00", "00:00:30")] == [90, 240, 2160, 1]


def test_xaug_status_shows_the_slurm_job_and_state(qdb, store_path, fake_kinds):
    import json

    from queue_helpers import fake, submit
    from typer.testing import CliRunner

    from xaug.engine.cli import app, load_commands
    from xaug.store.changes import set_slurm_job, set_slurm_state
    from xaug.store.jobs import claim_job

    load_commands()
    job = fake("on-slurm")
    submit(qdb, [job, fake("local")])
    claim_job(qdb, lambda j: [], host="h", log_path_for=lambda j: "x.log")
    set_slurm_job(qdb, job.key, "41_2", "PENDING")
    set_slurm_state(qdb, "41_2", "RUNNING")
    runner = CliRunner()
    shown = runner.invoke(app, ["status", "--store", str(store_path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "slurm" in shown.output and "41_2 RUNNING" in shown.output
    as_json = json.loads(runner.invoke(app, ["status", "--store", str(store_path), "--json"]).output)
    assert {(j["slurm_job_id"], j["slurm_state"]) for j in as_json["jobs"]} == {("41_2", "RUNNING"), (None, None)}


@pytest.mark.parametrize(("ci", "outcome", "exit_code"), [("true", "1 error", 1), ("", "1 skipped", 0)])
def test_without_slurm_the_slurm_tests_skip_here_and_fail_in_ci(tmp_path, ci, outcome, exit_code):
    """The Slurm tests with no Slurm commands on PATH: skipped with the reason locally, a failure under CI=true."""
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).parent
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {"PATH": str(bare), "CI": ci, "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(here / "test_slurm.py"), "-k", "tiny_study", "--basetemp", str(tmp_path / "t")],
                          capture_output=True, text=True, env=env, cwd=here.parents[2], timeout=120)
    assert outcome in done.stdout and done.returncode == exit_code, done.stdout[-2000:]
    assert "sbatch is not installed" in done.stdout


DDPM_ON_SLURM = """
name: wide
dataset:
  source: phantom
  image_size: 32
  phantom: {scale: 0.12, seed: 0, native_size: 32}
splits: {folds: 2, validation_fraction: 0.2, seed: 0, run_folds: [0]}
classifiers:
  - {name: tiny, model: test_resnet, epochs: 1, batch_size: 16, lr: 0.002}
generators:
  - {name: ddpm, model: ddpm}
amounts: [0, 4]
resources:
  generator_gpus: 2
  executor: slurm
  slurm: {partition: gpu, cpus_per_job: 8}
"""


def test_a_two_gpu_train_generator_job_asks_slurm_for_two_gpus_on_one_node(tmp_path):
    """generator_gpus: 2 -> the planned DDPM training needs 2 GPUs -> sbatch --gpus-per-node=2 (one node, one
    task: the worker starts the accelerate processes itself)."""
    from submitit.slurm.slurm import _make_sbatch_string

    from xaug.engine.planner import plan_study
    from xaug.engine.queue.slurm import sbatch_parameters
    from xaug.engine.recipe import load_recipe

    recipe = tmp_path / "wide.yaml"
    recipe.write_text(DDPM_ON_SLURM)
    loaded = load_recipe(recipe)
    jobs = {job.kind: job for job in plan_study(loaded)}
    train = jobs["train_generator"]
    assert train.gpus_needed == 2
    settings = loaded.recipe.resources.model_dump()["slurm"]
    params = sbatch_parameters(settings, {"kind": train.kind, "gpus_needed": train.gpus_needed})
    assert params["gpus_per_node"] == 2 and params["cpus_per_task"] == 8 and params["partition"] == "gpu"
    script = _make_sbatch_string(command="run", folder=tmp_path, **params)
    assert "#SBATCH --gpus-per-node=2\n" in script and "#SBATCH --nodes=1\n" in script
    assert "--ntasks-per-node" not in script or "#SBATCH --ntasks-per-node=1\n" in script
    sample = sbatch_parameters(settings, {"kind": "sample", "gpus_needed": jobs["sample"].gpus_needed})
    assert sample["gpus_per_node"] == 1


class _SbatchRecorder:
    """A SlurmExecutor whose sbatch is recorded instead of run (the engine's side of the submission)."""

    @staticmethod
    def make(store_path):
        from xaug.engine.queue.slurm import SlurmExecutor

        class Recording(SlurmExecutor):
            def __init__(self, path):
                super().__init__(path)
                self.submitted: list[tuple[str, dict]] = []

            def _submit(self, handles):
                self.submitted += [(h.key, h.params) for h in handles]
                return [f"{100 + len(self.submitted)}_{i}" for i in range(len(handles))]

        return Recording(store_path)


@pytest.mark.parametrize("local_gpus", [[], [0]], ids=["no-gpu-here", "one-gpu-here"])
def test_gpu_jobs_go_to_slurm_whatever_gpus_the_engines_machine_has(store_path, qdb, fake_kinds, local_gpus):
    """The engine's machine has no GPU (or one): a 2-GPU job is still submitted, asking Slurm for 2, and a 1-GPU
    job queued after it is not held back by the local reservation policy."""
    from queue_helpers import fake, submit

    from xaug.engine.queue.engine import Engine
    from xaug.store.jobs import load_job

    executor = _SbatchRecorder.make(store_path)
    engine = Engine(store_path, cpu_slots=4, gpus=local_gpus, executor=executor, poll_s=0.01)
    engine.start()
    try:
        wide, small = fake("wide", gpus=2), fake("small", gpus=1)
        submit(qdb, [wide, small])
        assert set(engine.dispatch()) == {wide.key, small.key}
        params = dict(executor.submitted)
        assert params[wide.key]["gpus_per_node"] == 2 and params[small.key]["gpus_per_node"] == 1
        assert engine.reservation.holder is None and not engine.reservation.tracking
        assert [load_job(qdb, job.key)["gpus"] for job in (wide, small)] == ["", ""]  # no local GPU taken
        assert load_job(qdb, wide.key)["slurm_job_id"] is not None
        assert engine.free_cpu_slots() == 2  # each Slurm job takes one of max_jobs slots
    finally:
        engine.request_stop()
        engine.shutdown()
