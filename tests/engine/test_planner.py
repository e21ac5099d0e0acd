"""The planner: DAG shape of a 2 generators x 2 classifiers x 2 amounts study, stable keys, reuse."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

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


def test_cpu_only_and_real_only_recipe(tmp_path):
    jobs = plan_study(_loaded(tmp_path, generators=[], duplicate_control=False, resources={"device": "cpu"},
                              splits={"folds": 3, "run_folds": [1]}))
    assert Counter(j.kind for j in jobs) == {"prepare_data": 1, "train_classifier": 4, "evaluate": 4, "analyse": 1}
    assert {j.gpus_needed for j in jobs} == {0}
    assert {j.config["fold"] for j in jobs if j.kind == "evaluate"} == {1}
