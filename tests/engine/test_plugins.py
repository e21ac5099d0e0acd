"""Generators and job kinds come from entry points: xaug's own, and a plugin package's, found the same way."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from xaug.store.errors import RecipeError
from xaug.engine.generators.registry import generator_names, get_generator
from xaug.engine.jobs import job_function, job_kinds
from xaug.engine.plugins import GENERATOR_PARAMS, GENERATORS, JOB_KINDS, plugin_entry_points
from xaug.engine.recipe import parse_recipe

HERE = Path(__file__).resolve().parent
FLAT = HERE / "plugin" / "xaug_flat_generator.py"
FAKE_JOBS = HERE / "queue" / "xaug_fake_jobs.py"

RECIPE = """\
name: plugintest
dataset: {source: phantom, image_size: 32, classes: [healthy, viral], phantom: {scale: 0.1}}
splits: {folds: 2}
generators:
  - {name: flat, model: flat, params: {noise: 2, size: 16}}
classifiers:
  - {model: resnet10t, epochs: 1}
amounts: [0, 6]
seeds: [0]
quality: {features: pixels}  # image_quality is faked; no Inception weights needed
resources: {device: cpu, max_attempts: 1}
"""


def test_xaugs_own_entry_points_are_installed_as_pyproject_declares_them():
    declared = tomllib.loads((HERE.parents[1] / "pyproject.toml").read_text())["project"]["entry-points"]
    for group in (GENERATORS, GENERATOR_PARAMS, JOB_KINDS):
        installed = {name: point.value for name, point in plugin_entry_points(group).items()
                     if point.dist is not None and point.dist.name == "xaug"}
        assert installed == declared[group], f"reinstall xaug (pip install -e .): {group} is stale"
    assert {"prepare_data", "train_generator", "sample", "image_quality", "train_classifier", "evaluate",
            "analyse"} <= set(job_kinds())
    assert job_function("analyse").__module__ == "xaug.engine.jobs.analyse"
    assert {"gan", "ddpm", "sd_finetune", "dreambooth", "lora"} <= set(generator_names())


def test_a_plugin_generator_in_its_own_package_runs_in_a_study(tmp_path, monkeypatch, install_plugin):
    assert "flat" not in generator_names()
    install_plugin("xaug_flat", {"xaug.generators": {"flat": "xaug_flat_generator"}}, [FLAT])
    # The classifier and image-quality jobs are faked (seconds); data, generator and sampling jobs are xaug's own,
    # run by the engine's forked workers, which find the plugin the way this process does.
    install_plugin("xaug_fake_jobs", {"xaug.job_kinds": {k: "xaug_fake_jobs:run" for k in
                                                         ("train_classifier", "evaluate", "image_quality")}},
                   [FAKE_JOBS])
    monkeypatch.setenv("XAUG_STORE", str(tmp_path / "plugin.db"))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    from xaug.engine.cli import load_commands

    out = CliRunner().invoke(load_commands(), ["run", str(recipe)], catch_exceptions=False)
    assert out.exit_code == 0, out.output

    from xaug.store import artifact_root, open_store
    from xaug.store.artifacts import load_artifacts
    from xaug.store.jobs import list_jobs, load_job_deps

    db_path = tmp_path / "plugin.db"
    db = open_store(db_path)
    jobs = list_jobs(db, study="plugintest")
    assert {j["status"] for j in jobs} == {"done"}
    for train in (j for j in jobs if j["kind"] == "train_generator"):
        sample = next(j for j in jobs if j["kind"] == "sample" and train["key"] in load_job_deps(db, j["key"]))
        checkpoint, = load_artifacts(db, train["key"], kind="checkpoint")
        means = json.loads((artifact_root(db_path) / checkpoint["path"] / "flat.json").read_text())["means"]
        assert set(means) == {"healthy", "viral"}
        for class_name, mean in means.items():
            rows = load_artifacts(db, sample["key"], kind="sample", class_name=class_name)
            assert len(rows) == 6
            pixels = np.stack([np.asarray(Image.open(artifact_root(db_path) / r["path"])) for r in rows])
            assert pixels.shape == (6, 16, 16)
            assert np.abs(pixels.astype(float) - mean).max() <= 3 and pixels.std() > 0
    db.conn.close()


def test_a_plugin_that_registers_nothing_or_fails_to_import_or_a_misspelt_name_is_a_clear_error(install_plugin):
    install_plugin("xaug_ghost", {"xaug.generators": {"ghost": "xaug_flat_generator"}}, [FLAT])
    with pytest.raises(KeyError, match=r"'ghost = xaug_flat_generator' \(package xaug_ghost\) registered no "
                                       r"generator named 'ghost'"):
        get_generator("ghost")
    install_plugin("xaug_broken", {"xaug.generators": {"broken": "xaug_no_such_module"}})
    with pytest.raises(RecipeError, match=r"generators\[0\]\.model: generator 'broken' could not be imported from "
                                          r"its entry point 'broken = xaug_no_such_module' \(package xaug_broken\): "
                                          r"ModuleNotFoundError"):
        parse_recipe(RECIPE.replace("model: flat", "model: broken"))
    install_plugin("xaug_flat", {"xaug.generators": {"flat": "xaug_flat_generator"}}, [FLAT])
    with pytest.raises(RecipeError, match=r"generators\[0\]\.model: unknown generator 'flta'\. Did you mean 'flat'"):
        parse_recipe(RECIPE.replace("model: flat", "model: flta"))
    with pytest.raises(RecipeError, match=r"generators\[0\]\.params\.noise"):
        parse_recipe(RECIPE.replace("noise: 2", "noise: 99"))


def test_each_declared_params_model_is_the_one_its_generator_registers():
    from xaug.engine.generators.registry import params_class

    declared = plugin_entry_points(GENERATOR_PARAMS)
    assert set(declared) == {"gan", "ddpm", "sd_finetune", "dreambooth", "lora", "pretrained_pipeline"}
    for name in declared:
        assert params_class(name) is get_generator(name).config_class, name
