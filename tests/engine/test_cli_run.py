"""`xaug plan|submit|run|results|status|cancel|retry|priority|logs|pause|resume` through typer's CliRunner.

The real job kinds are replaced by the fake counting job of tests/engine/queue (a plugin package first on the
path declares the same kind names) so that `xaug run` exercises the planner, the queue and the engine in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from xaug.engine.cli import load_commands

FAKE_JOBS = Path(__file__).resolve().parent / "queue" / "xaug_fake_jobs.py"
KINDS = ("prepare_data", "train_classifier", "evaluate", "train_generator", "sample", "image_quality")
# The real analyse job runs (no torch): `xaug results` reads the analysis it stores.

RECIPE = """\
name: clitest
dataset: {{source: phantom, image_size: 32, phantom: {{scale: 0.1}}}}
splits: {{folds: 2}}
classifiers:
  - {{model: resnet10t, epochs: 1}}
amounts: [0, 50]
duplicate_control: {dup}
seeds: [0]
resources: {{device: cpu, max_attempts: {attempts}}}
"""


@pytest.fixture
def cli(tmp_path, monkeypatch, install_plugin):
    """A CliRunner invoker bound to a temporary store, with every job kind faked."""
    install_plugin("xaug_fake_jobs", {"xaug.job_kinds": {kind: "xaug_fake_jobs:run" for kind in KINDS}}, [FAKE_JOBS])
    monkeypatch.setenv("XAUG_STORE", str(tmp_path / "cli.db"))
    app = load_commands()
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        return result

    return invoke


def _recipe(tmp_path, dup: bool = False, attempts: int = 2) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(dup=str(dup).lower(), attempts=attempts))
    return path


def test_plan_submit_status_and_queue_commands(cli, tmp_path):
    recipe = _recipe(tmp_path)
    out = cli("plan", recipe, "--json")
    assert out.exit_code == 0, out.output
    plan = json.loads(out.output)
    assert plan["kinds"]["train_classifier"] == {"jobs": 2, "reused": 0, "queued": 0, "new": 2}
    out = cli("submit", recipe, "--json")
    assert json.loads(out.output)["new"] == 6
    status = json.loads(cli("status", "--json").output)
    assert status["counts"] == {"queued": 6} and status["engine"] is None
    first = status["jobs"][0]["key"]
    assert cli("priority", first[:10], "5").exit_code == 0
    assert json.loads(cli("status", "--json").output)["jobs"][0]["priority"] == 5
    assert "cancelled" in cli("cancel", first[:10]).output
    assert json.loads(cli("status", "--json", "--state", "blocked").output)["counts"] == {"blocked": 5}
    assert "queued again" in cli("retry", first[:10]).output
    assert "paused" in cli("pause").output
    assert json.loads(cli("status", "--json").output)["paused"] is True
    assert cli("resume").exit_code == 0
    assert json.loads(cli("plan", recipe, "--json").output)["kinds"]["evaluate"]["queued"] == 2
    from xaug.engine.errors import EngineError

    with pytest.raises(EngineError, match="has not started yet"):
        cli("logs", status["jobs"][1]["key"][:10])


def test_unknown_key_is_a_clean_error(cli, tmp_path):
    cli("submit", _recipe(tmp_path))
    from xaug.engine.errors import EngineError

    with pytest.raises(EngineError, match="no job key starts with 'zzzz'"):
        cli("cancel", "zzzz")


def test_run_executes_the_study_and_results_prints_per_class_table(cli, tmp_path):
    recipe = _recipe(tmp_path, dup=True)
    out = cli("run", recipe, "--jobs", "2")
    assert out.exit_code == 0, out.output
    assert "finished" in out.output and "baseline" in out.output and "duplicate +50" in out.output
    status = json.loads(cli("status", "--json").output)
    assert status["counts"] == {"done": 10}
    out = cli("results", "clitest", "--json")
    data = json.loads(out.output)
    baseline = [r for r in data["classes"] if r["arm"] == "baseline"]
    assert [r["class_name"] for r in baseline] == ["healthy", "bacterial", "viral", "fungal", "covid19"]
    assert data["unit"] == "n = 2 units; unit = fold (seeds averaged within a fold)"
    assert baseline[0]["n"] == 2 and baseline[0]["precision_mean"] == pytest.approx(0.505)
    assert baseline[0]["precision_sd"] == pytest.approx(0.00707, abs=1e-4)
    text = cli("results", "clitest").output
    assert "healthy" in text and "±" in text and "unit = fold" in text
    again = cli("run", recipe)
    assert again.exit_code == 0 and "10 already done" in again.output
    key = status["jobs"][0]["key"]
    assert "worker: done" in cli("logs", key[:12]).output


def test_run_reports_a_failed_job_and_exits_non_zero(cli, tmp_path, install_plugin):
    install_plugin("broken_analyse", {"xaug.job_kinds": {"analyse": "xaug_no_such_module:run"}})
    out = cli("run", _recipe(tmp_path, attempts=1), "--jobs", "2")
    text = "".join(out.output.split())
    assert out.exit_code == 1
    assert "1failed" in text and "Nomodulenamed'xaug_no_such_module'" in text
    assert "log:" in text and "analyse-" in text
