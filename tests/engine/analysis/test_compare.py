"""Paired comparisons of a fake study with known effects; the analyse job records them."""

import pytest
from fake_study import AMOUNTS, CLASSES, CLASSIFIERS, FOLDS, GENERATORS, SEEDS, build_fake_study

from xaug.engine.analysis.compare import DUPLICATE, compare_arms, generator_effects, paired_deltas
from xaug.engine.analysis.study import analyse_study
from xaug.engine.jobs import analyse
from xaug.engine.jobs.context import JobContext
from xaug.store.analysis import load_comparisons, load_correlations, load_study_evaluations


@pytest.fixture
def study(store_db):
    build_fake_study(store_db)
    return store_db


def test_every_arm_is_compared_with_baseline_and_duplicate(study):
    rows = compare_arms(load_study_evaluations(study, "toy"), classes=CLASSES)
    units = len(FOLDS) * len(SEEDS)
    synthetic_arms = len(GENERATORS) * len(CLASSIFIERS) * len(AMOUNTS)
    duplicate_arms = len(CLASSIFIERS) * len(AMOUNTS)
    per_arm_metrics = 3 + len(CLASSES)
    assert len(rows) == (2 * synthetic_arms + duplicate_arms) * per_arm_metrics
    assert all(r["n"] == units for r in rows)
    assert {r["reference"] for r in rows if r["generator"] == DUPLICATE} == {"baseline"}
    for r in rows:
        assert r["p_adjusted"] >= r["p_value"] - 1e-15 and r["correction"] == "holm" and r["test"] == "corrected_t"


def test_known_effects_are_recovered(study):
    evaluations = load_study_evaluations(study, "toy")
    effects = generator_effects(evaluations, "accuracy", ratio=0.5)
    for gen, effect in GENERATORS.items():
        s = effects[gen]["summary"]
        assert s.ci_low < effect < s.ci_high, gen
    assert effects["goodgan"]["summary"].p_value < 0.01
    assert effects["midsd"]["summary"].p_value > 0.01
    # against the duplicate control (+1 pp) the good generator gains about 4 pp
    rows = compare_arms(evaluations, ratio=0.5)
    vs_dup = [r for r in rows if r["generator"] == "goodgan" and r["reference"] == "duplicate"
              and r["metric"] == "accuracy"]
    assert all(0.02 < r["mean"] < 0.06 for r in vs_dup)
    viral = generator_effects(evaluations, "f1", "viral", ratio=0.5)
    assert viral["goodgan"]["summary"].mean == pytest.approx(0.15, abs=0.02)


def test_pairing_is_by_classifier_fold_and_seed(study):
    evaluations = load_study_evaluations(study, "toy")
    deltas = paired_deltas(evaluations)
    one = deltas[("goodgan", CLASSIFIERS[0], AMOUNTS[0], "baseline")][("accuracy", "")]
    assert sorted((f, s) for f, s, _ in one) == [(f, s) for f in FOLDS for s in SEEDS]
    # the run noise (SD 0.01) shared within a fold x seed cancels: paired SD is about 0.004 * sqrt(2)
    rows = compare_arms(evaluations)
    sds = [r["sd"] for r in rows if r["metric"] == "accuracy" and r["reference"] == "baseline"]
    assert max(sds) < 0.009
    # a run without its baseline is left out
    dropped = [e for e in evaluations if not (e["arm"] == "baseline" and e["fold"] == 0 and e["seed"] == 0
                                              and e["classifier"] == CLASSIFIERS[0])]
    rows = compare_arms(dropped)
    n = {r["n"] for r in rows if r["classifier"] == CLASSIFIERS[0] and r["reference"] == "baseline"}
    assert n == {len(FOLDS) * len(SEEDS) - 1}


def test_analyse_job_records_comparisons_and_correlations(study, tmp_path):
    ctx = JobContext(key="a" * 40, kind="analyse", db=study, db_path=tmp_path / "xaug.db",
                     config=dict(study="toy", classes=CLASSES,
                                 analysis=dict(test="wilcoxon", correction="fdr_bh", alpha=0.05)))
    analyse.run(ctx)
    stored = load_comparisons(study, "toy")
    assert len(stored) == len(analyse_study(study, "toy").comparisons)
    assert {r["test"] for r in stored} == {"wilcoxon"} and {r["correction"] for r in stored} == {"fdr_bh"}
    fid = [r for r in load_correlations(study, "toy")
           if r["quality_metric"] == "fid/pixels" and r["utility_metric"] == "delta_accuracy"
           and r["method"] == "spearman"]
    assert fid[0]["n"] == len(GENERATORS) and fid[0]["r"] == pytest.approx(-1.0)
    analyse.run(ctx)  # re-running replaces, never duplicates
    assert len(load_comparisons(study, "toy")) == len(stored)
