"""The planner: DAG shape of a 2 generators x 2 classifiers x 2 amounts study, stable keys, reuse."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from xaug.engine.planner import plan_study, summarise_plan
from xaug.engine.recipe import LoadedRecipe, Recipe


def _loaded(tmp_path: Path, **changes) -> LoadedRecipe:
    data = {
        "name": "p",
        "splits": {"folds": 2},
        "generators": [{"name": "g1", "model": "ddpm"}, {"name": "g2", "model": "gan", "params": {"x": 1}}],
        "classifiers": [{"model": "resnet10t", "weights": "w/r.safetensors"}, {"model": "efficientnet_b0"}],
        "amounts": [0, 100, 200],
        "seeds": [0, 1],
        "resources": {"generator_gpus": 2, "classifier_gpus": 1},
    }
    data.update(changes)
    return LoadedRecipe(recipe=Recipe.model_validate(data), path=tmp_path / "recipe.yaml", text="")


def test_dag_shape_of_a_2x2x2_study(tmp_path):
    jobs = plan_study(_loaded(tmp_path))
    by_key = {j.key: j for j in jobs}
    assert len(by_key) == len(jobs)
    counts = Counter(j.kind for j in jobs)
    folds, gens, clfs, seeds, amounts = 2, 2, 2, 2, 2
    arms = 1 + gens * amounts + amounts  # baseline, synthetic per generator x amount, duplicate per amount
    assert counts == {"prepare_data": 1, "train_generator": folds * gens, "sample": folds * gens,
                      "image_quality": folds * gens, "train_classifier": folds * clfs * seeds * arms,
                      "evaluate": folds * clfs * seeds * arms, "analyse": 1}
    assert summarise_plan(jobs)["train_classifier"] == 56
    position = {j.key: i for i, j in enumerate(jobs)}
    for job in jobs:
        assert all(position[d] < position[job.key] for d in job.deps)  # dependencies come first
        kinds = sorted(by_key[d].kind for d in job.deps)
        if job.kind == "train_classifier":
            expected = ["prepare_data", "sample"] if job.config["arm"] == "synthetic" else ["prepare_data"]
            assert kinds == expected
            if job.config["arm"] == "synthetic":
                sample = next(by_key[d] for d in job.deps if by_key[d].kind == "sample")
                assert sample.config["fold"] == job.config["fold"]
                assert sample.config["generator"]["name"] == job.config["generator"]
        elif job.kind == "evaluate":
            assert kinds == ["prepare_data", "train_classifier"]
            train = next(by_key[d] for d in job.deps if by_key[d].kind == "train_classifier")
            assert train.config == job.config
        elif job.kind == "sample":
            assert kinds == ["train_generator"] and job.config["n_per_class"] == 200
        elif job.kind == "image_quality":
            assert kinds == ["prepare_data", "sample"]
        elif job.kind == "train_generator":
            # ddpm trains on 2 GPUs (accelerate DDP); the GAN on one.
            gpus = 2 if job.config["generator"]["model"] == "ddpm" else 1
            assert kinds == ["prepare_data"] and job.config["seed"] == 0 and job.gpus_needed == gpus
        elif job.kind == "analyse":
            assert Counter(kinds) == {"evaluate": 56, "image_quality": 4}
    arms_seen = Counter((j.config["arm"], j.config["generator"], j.config["amount"])
                        for j in jobs if j.kind == "train_classifier")
    assert arms_seen[("baseline", None, 0)] == 8 and arms_seen[("duplicate", None, 100)] == 8
    assert arms_seen[("synthetic", "g2", 200)] == 8
    prepare = next(j for j in jobs if j.kind == "prepare_data")
    assert prepare.gpus_needed == 0 and prepare.config["splits"]["run_folds"] is None
    weights = next(j for j in jobs if j.kind == "train_classifier").config["classifier"]["weights"]
    assert weights == str(tmp_path / "w" / "r.safetensors")


def test_keys_are_stable_and_adding_a_classifier_only_adds_jobs(tmp_path):
    first = plan_study(_loaded(tmp_path))
    assert [j.key for j in first] == [j.key for j in plan_study(_loaded(tmp_path))]
    more = plan_study(_loaded(tmp_path, classifiers=[{"model": "resnet10t", "weights": "w/r.safetensors"},
                                                     {"model": "efficientnet_b0"}, {"model": "resnet18"}]))
    old, new = {j.key for j in first}, {j.key for j in more}
    analyse_old = next(j.key for j in first if j.kind == "analyse")
    assert old - new == {analyse_old}
    added = Counter(j.kind for j in more if j.key not in old)
    assert added == {"train_classifier": 28, "evaluate": 28, "analyse": 1}


def test_adding_an_amount_keeps_generator_training(tmp_path):
    first = plan_study(_loaded(tmp_path))
    more = plan_study(_loaded(tmp_path, amounts=[0, 100, 200, 300]))
    trained = {j.key for j in first if j.kind == "train_generator"}
    assert trained == {j.key for j in more if j.kind == "train_generator"}
    assert {j.config["n_per_class"] for j in more if j.kind == "sample"} == {300}


def test_repeated_k_fold_plans_every_repeat_with_its_own_generators(tmp_path):
    one = plan_study(_loaded(tmp_path))
    two = plan_study(_loaded(tmp_path, splits={"folds": 2, "repeats": 2}))
    counts_one, counts_two = Counter(j.kind for j in one), Counter(j.kind for j in two)
    for kind in ("train_generator", "sample", "image_quality", "train_classifier", "evaluate"):
        assert counts_two[kind] == 2 * counts_one[kind], kind
    assert counts_two["prepare_data"] == counts_two["analyse"] == 1
    prepare = next(j for j in two if j.kind == "prepare_data")
    assert prepare.config["splits"]["repeats"] == 2
    by_key = {j.key: j for j in two}
    generators = [j for j in two if j.kind == "train_generator"]
    assert sorted({(j.config["repeat"], j.config["fold"]) for j in generators}) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for job in two:
        if job.kind in ("train_generator", "sample", "image_quality", "train_classifier", "evaluate"):
            assert "repeat" in job.config and f"repeat {job.config['repeat']} fold" in job.label
        if job.kind == "train_classifier" and job.config["arm"] == "synthetic":
            sample = next(by_key[d] for d in job.deps if by_key[d].kind == "sample")
            assert (sample.config["repeat"], sample.config["fold"]) == (job.config["repeat"], job.config["fold"])
    # one repeat: no `repeat` field anywhere, so keys stay what they were before repeated k-fold existed
    assert not any("repeat" in j.config for j in one if j.kind != "prepare_data")
    assert "repeats" not in next(j for j in one if j.kind == "prepare_data").config["splits"]
    explicit = plan_study(_loaded(tmp_path, splits={"folds": 2, "repeats": 1}))
    assert [j.key for j in explicit] == [j.key for j in one]


def test_cpu_only_and_real_only_recipe(tmp_path):
    jobs = plan_study(_loaded(tmp_path, generators=[], duplicate_control=False, resources={"device": "cpu"},
                              splits={"folds": 3, "run_folds": [1]}))
    assert Counter(j.kind for j in jobs) == {"prepare_data": 1, "train_classifier": 4, "evaluate": 4, "analyse": 1}
    assert {j.gpus_needed for j in jobs} == {0}
    assert {j.config["fold"] for j in jobs if j.kind == "evaluate"} == {1}


# --------------------------------------------------------------------------------------------------------------
# Content-addressed keys: a folder dataset and a weights file, moved and edited


FOLDER_RECIPE = """\
name: moved
dataset: {{source: folder, path: {data}, image_size: 32, one_patient_per_image: true}}
splits: {{folds: 2}}
generators: [{{name: g, model: gan}}]
classifiers:
  - {{model: resnet10t, weights: {weights}}}
{more}
amounts: [0, 50]
seeds: [0]
quality: {{features: pixels}}
resources: {{device: cpu}}
"""


def _folder_dataset(root: Path) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("healthy", "viral"):
        for i in range(4):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(root / name / f"P{i}_0.png")
    return root


def _plan_text(where: Path, data: Path, weights: Path, more: str = ""):
    from xaug.engine.recipe import parse_recipe

    where.mkdir(parents=True, exist_ok=True)
    text = FOLDER_RECIPE.format(data=data, weights=weights, more=more)
    return plan_study(parse_recipe(text, where / "recipe.yaml"))


@pytest.fixture
def study_files(tmp_path, monkeypatch):
    """A folder dataset and a classifier weights file under tmp_path/a, and an isolated hash cache."""
    monkeypatch.setenv("XAUG_CACHE_DIR", str(tmp_path / "cache"))
    data = _folder_dataset(tmp_path / "a" / "data")
    weights = tmp_path / "a" / "w.safetensors"
    weights.write_bytes(b"weights v1" * 100)
    return data, weights


def test_moving_the_dataset_and_weights_keeps_every_key(tmp_path, study_files):
    data, weights = study_files
    before = _plan_text(tmp_path / "r1", data, weights)
    (tmp_path / "a").rename(tmp_path / "b")
    after = _plan_text(tmp_path / "r2", tmp_path / "b" / "data", tmp_path / "b" / "w.safetensors")
    assert [j.key for j in before] == [j.key for j in after]
    prepare = next(j for j in after if j.kind == "prepare_data")
    # The worker still gets the absolute path of where the data is now.
    assert prepare.config["dataset"]["path"] == str(tmp_path / "b" / "data")
    train = next(j for j in after if j.kind == "train_classifier")
    assert train.config["classifier"]["weights"] == str(tmp_path / "b" / "w.safetensors")


def test_editing_one_image_changes_prepare_data_and_everything_below(tmp_path, study_files):
    from PIL import Image
    import numpy as np

    data, weights = study_files
    before = _plan_text(tmp_path / "r", data, weights)
    Image.fromarray(np.full((16, 16), 7, dtype=np.uint8)).save(data / "viral" / "P2_0.png")
    after = _plan_text(tmp_path / "r", data, weights)
    assert len(before) == len(after)
    # Every job depends on prepare_data, so every key changes; the kinds and labels stay the same.
    assert not {j.key for j in before} & {j.key for j in after}
    assert [j.label for j in before] == [j.label for j in after]
    # Adding a classifier to the edited study reuses every job it had.
    more = _plan_text(tmp_path / "r", data, weights, more="  - {model: resnet18}")
    kept = {j.key for j in after if j.kind != "analyse"}
    assert kept <= {j.key for j in more}
    assert {j.kind for j in more if j.key not in {k.key for k in after}} == {"train_classifier", "evaluate",
                                                                              "analyse"}


def test_changing_the_weights_file_changes_only_classifier_jobs(tmp_path, study_files):
    data, weights = study_files
    before = {j.label: j.key for j in _plan_text(tmp_path / "r", data, weights)}
    weights.write_bytes(b"weights v2" * 100)
    after = {j.label: j.key for j in _plan_text(tmp_path / "r", data, weights)}
    changed = {label.split()[0] for label in before if before[label] != after[label]}
    assert changed == {"train", "evaluate", "analyse"}
    assert before["prepare_data folder"] == after["prepare_data folder"]


def test_code_version_is_part_of_the_key(monkeypatch):
    from xaug.engine import planner

    key = planner.job_key("evaluate", {"a": 1}, [])
    monkeypatch.setitem(planner.JOB_VERSIONS, "evaluate", planner.JOB_VERSIONS["evaluate"] + 1)
    assert planner.job_key("evaluate", {"a": 1}, []) != key
    assert planner.job_key("sample", {"a": 1}, []) == planner.job_key("sample", {"a": 1}, [])


def test_plan_reports_all_reused_after_submit_and_move(tmp_path, study_files, monkeypatch):
    from typer.testing import CliRunner
    from xaug.engine.cli import load_commands
    from xaug.store import open_store
    from xaug.store.jobs import claim_job, list_jobs, load_job, mark_job_done

    data, weights = study_files
    monkeypatch.setenv("XAUG_STORE", str(tmp_path / "s.db"))
    recipe = tmp_path / "r" / "recipe.yaml"
    recipe.parent.mkdir()
    recipe.write_text(FOLDER_RECIPE.format(data="../a/data", weights="../a/w.safetensors", more=""))
    app, runner = load_commands(), CliRunner()
    out = runner.invoke(app, ["submit", str(recipe), "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    db = open_store(tmp_path / "s.db")
    jobs = list_jobs(db)
    pending = next(j for j in jobs if j["kind"] == "train_classifier")
    # Run (claim, then finish) every job but `pending`, as an engine would: its evaluate and analyse stay queued.
    fits = lambda row: None if row["key"] == pending["key"] else []  # noqa: E731
    while (job := claim_job(db, fits, host="test", log_path_for=lambda row: "")) is not None:
        mark_job_done(db, job["key"])
    (tmp_path / "a").rename(tmp_path / "b")
    recipe.write_text(FOLDER_RECIPE.format(data="../b/data", weights="../b/w.safetensors", more=""))
    plan = json.loads(runner.invoke(app, ["plan", str(recipe), "--json"], catch_exceptions=False).output)
    assert {kind: (row["jobs"], row["new"]) for kind, row in plan["kinds"].items()}["prepare_data"] == (1, 0)
    assert sum(row["reused"] for row in plan["kinds"].values()) == len(jobs) - 3
    assert sum(row["new"] for row in plan["kinds"].values()) == 0
    assert [plan["kinds"][kind]["queued"] for kind in ("train_classifier", "evaluate", "analyse")] == [1, 1, 1]
    # Re-submitting points the job that has not run yet at the weights' new place.
    runner.invoke(app, ["submit", str(recipe)], catch_exceptions=False)
    config = json.loads(load_job(db, pending["key"])["config_json"])
    assert config["classifier"]["weights"] == str(tmp_path / "b" / "w.safetensors")
    assert json.loads(pending["config_json"])["classifier"]["weights"] == str(tmp_path / "a" / "w.safetensors")


def test_new_dataset_options_change_keys_only_when_used(tmp_path):
    plain = plan_study(_loaded(tmp_path, generators=[], amounts=[0]))
    prepare = plain[0]
    # Options a study does not use are not in prepare_data's config, so its keys are those of before they existed.
    assert not {"subsample", "external_test"} & set(prepare.config["dataset"])
    assert not {"where", "image_root", "findings_column", "finding_columns"} & set(prepare.config["dataset"]["csv"])
    subsampled = plan_study(_loaded(tmp_path, generators=[], amounts=[0],
                                    dataset={"subsample": {"fraction": 0.5}}))
    assert subsampled[0].config["dataset"]["subsample"]["fraction"] == 0.5
    assert not {j.key for j in plain} & {j.key for j in subsampled}
    reseeded = plan_study(_loaded(tmp_path, generators=[], amounts=[0],
                                  dataset={"subsample": {"fraction": 0.5, "seed": 1}}))
    assert reseeded[0].key != subsampled[0].key
    options = [{"csv": {"where": {"view": ["PA"]}}}, {"csv": {"image_root": "images"}},
               {"csv": {"on_missing_label": "skip"}}, {"csv": {"findings_column": {"column": "Finding Labels"}}},
               {"csv": {"finding_columns": {"columns": ["a", "b"], "uncertain": "positive"}}},
               {"subsample": {"fraction": 0.5}, "external_test": True},
               {"subsample": {"fraction": 0.5}, "external_test": True, "external_test_per_class": 100}]
    keys = {plan_study(_loaded(tmp_path, generators=[], amounts=[0], dataset=d))[0].key for d in options}
    assert len(keys) == len(options) and prepare.key not in keys


def test_external_test_set_adds_one_evaluate_job_per_trained_classifier(tmp_path):
    internal = plan_study(_loaded(tmp_path, dataset={"subsample": {"fraction": 0.5}}))
    jobs = plan_study(_loaded(tmp_path, dataset={"subsample": {"fraction": 0.5}, "external_test": True}))
    kinds, internal_kinds = Counter(j.kind for j in jobs), Counter(j.kind for j in internal)
    assert kinds["evaluate"] == 2 * kinds["train_classifier"] == 2 * internal_kinds["evaluate"]
    external = [j for j in jobs if j.kind == "evaluate" and j.config.get("test_set") == "external"]
    assert len(external) == kinds["train_classifier"] and all(j.label.endswith(" on external") for j in external)
    by_key = {j.key: j for j in jobs}
    for job in external:  # scores the same trained classifier as the fold's own evaluate job
        train = next(by_key[d] for d in job.deps if by_key[d].kind == "train_classifier")
        assert {k: v for k, v in job.config.items() if k != "test_set"} == train.config
    analyse = next(j for j in jobs if j.kind == "analyse")
    assert {j.key for j in external} <= set(analyse.deps)
    # The fold evaluations keep their config: only the dataset options (via prepare_data's key) differ.
    fold_evals = [j.config for j in jobs if j.kind == "evaluate" and "test_set" not in j.config]
    assert fold_evals == [j.config for j in internal if j.kind == "evaluate"]


def test_gpu_memory_per_kind_is_declared_or_measured_and_keys_do_not_change(tmp_path):
    plain = plan_study(_loaded(tmp_path))
    resources = {"generator_gpus": 2, "classifier_gpus": 1,
                 "gpu_memory_gb": {"train_classifier": 6, "evaluate": "measured"}}
    jobs = plan_study(_loaded(tmp_path, resources=resources))
    assert [j.key for j in jobs] == [j.key for j in plain]  # where a job runs is not what it computes
    for job in jobs:
        if job.kind == "train_classifier":
            assert job.gpu_memory_mb == 6 * 1024 and job.memory_group is None
        elif job.kind == "evaluate":
            assert job.gpu_memory_mb is None and job.memory_group.startswith("evaluate:")
        else:
            assert job.gpu_memory_mb is None and job.memory_group is None
    groups = {j.config["classifier"]["model"]: j.memory_group for j in jobs if j.kind == "evaluate"}
    assert len(groups) == 2  # one group per classifier spec, shared by its folds, seeds and arms
    assert len({j.memory_group for j in jobs if j.kind == "evaluate"}) == 2


def test_gpu_memory_is_only_for_gpu_kinds(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="train_classifier"):
        _loaded(tmp_path, resources={"gpu_memory_gb": {"analyse": 2}})
    with pytest.raises(ValidationError):
        _loaded(tmp_path, resources={"gpu_memory_gb": {"train_classifier": 0}})
    cpu = plan_study(_loaded(tmp_path, resources={"device": "cpu", "gpu_memory_gb": {"train_classifier": 6}}))
    assert all(j.gpu_memory_mb is None for j in cpu)
