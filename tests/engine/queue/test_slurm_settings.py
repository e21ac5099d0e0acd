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
