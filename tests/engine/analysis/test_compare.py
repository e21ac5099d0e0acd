"""Paired comparisons of a fake study with known effects, paired by replication unit (fold x repeat, seeds
averaged); the analyse job records them."""

import copy
import math

import numpy as np
import pytest
from scipy import stats as sps
from fake_study import AMOUNTS, CLASSES, CLASSIFIERS, FOLDS, GENERATORS, SEEDS, build_fake_study

from xaug.engine.analysis.compare import (DUPLICATE, common_amounts, compare_arms, generator_effects,
                                          paired_deltas, resampling_ratio)
from xaug.engine.analysis.study import analyse_study
from xaug.engine.jobs import analyse
from xaug.engine.jobs.context import JobContext
from xaug.store.analysis import (load_analysis, load_comparisons, load_correlations, load_headline,
                                 load_study_evaluations)


@pytest.fixture
def study(store_db):
    build_fake_study(store_db)
    return store_db


def test_every_arm_is_compared_with_baseline_and_duplicate(study):
    rows = compare_arms(load_study_evaluations(study, "toy"), classes=CLASSES)
    units = len(FOLDS)  # seeds are averaged within a fold: they are not units
    synthetic_arms = len(GENERATORS) * len(CLASSIFIERS) * len(AMOUNTS)
    duplicate_arms = len(CLASSIFIERS) * len(AMOUNTS)
    per_arm_metrics = 3 + len(CLASSES)
    assert len(rows) == (2 * synthetic_arms + duplicate_arms) * per_arm_metrics
    assert all(r["n"] == units for r in rows)
    assert {r["reference"] for r in rows if r["generator"] == DUPLICATE} == {"baseline"}
    for r in rows:
        assert r["p_adjusted"] >= r["p_value"] - 1e-15 and r["correction"] == "holm" and r["test"] == "corrected_t"


def _headline(rows, reference="baseline", metric="accuracy", class_name=""):
    return {r["generator"]: r for r in rows
            if r["reference"] == reference and r["metric"] == metric and r["class_name"] == class_name}


def test_known_effects_are_recovered(study):
    evaluations = load_study_evaluations(study, "toy")
    rows = generator_effects(evaluations, classes=CLASSES, ratio=0.5)
    effects = _headline(rows)
    for gen, effect in GENERATORS.items():
        assert effects[gen]["ci_low"] < effect < effects[gen]["ci_high"], gen
        assert effects[gen]["n"] == len(FOLDS)
    assert effects["goodgan"]["p_value"] < 0.01
    assert effects["midsd"]["p_value"] > 0.01
    # against the duplicate control (+1 pp) the good generator gains about 4 pp, on every headline metric
    for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert _headline(rows, "duplicate", metric)["goodgan"]["mean"] == pytest.approx(0.04, abs=0.01)
    assert DUPLICATE not in _headline(rows, "duplicate")
    assert _headline(rows, "baseline", "f1", "viral")["goodgan"]["mean"] == pytest.approx(0.15, abs=0.02)
    # p adjusted across the generators of each (reference, metric, class) family, Holm by default
    family = _headline(rows)
    from xaug.engine.analysis.stats import adjust_p_values
    names = list(family)
    adjusted = adjust_p_values([family[g]["p_value"] for g in names], "holm")
    assert [family[g]["p_adjusted"] for g in names] == pytest.approx(list(adjusted))


def test_headline_uses_only_amounts_common_to_all_generators(study):
    evaluations = load_study_evaluations(study, "toy")
    extra = [copy.deepcopy(e) for e in evaluations if e["generator"] == "goodgan" and e["amount"] == AMOUNTS[0]]
    for e in extra:  # goodgan alone gets a huge extra amount that would drag its average up
        e["amount"], e["results"] = 5000, {k: v + 0.5 for k, v in e["results"].items()}
    assert common_amounts(evaluations + extra) == AMOUNTS
    before = _headline(generator_effects(evaluations, ratio=0.5))["goodgan"]["mean"]
    after = _headline(generator_effects(evaluations + extra, ratio=0.5))["goodgan"]
    assert after["mean"] == pytest.approx(before) and after["amounts"] == ",".join(map(str, AMOUNTS))


def test_pairing_is_by_classifier_unit_and_seed(study):
    evaluations = load_study_evaluations(study, "toy")
    deltas = paired_deltas(evaluations)
    one = deltas[("goodgan", CLASSIFIERS[0], AMOUNTS[0], "baseline")][("accuracy", "")]
    assert sorted(one) == [(0, f) for f in FOLDS]  # one difference per (repeat, fold)
    by_run = {(e["arm"], e["generator"], e["amount"], e["fold"], e["seed"]): e["results"]["accuracy"]
              for e in evaluations if e["classifier"] == CLASSIFIERS[0]}
    fold0 = [by_run[("synthetic", "goodgan", AMOUNTS[0], 0, s)] - by_run[("baseline", None, 0, 0, s)] for s in SEEDS]
    assert one[(0, 0)] == pytest.approx(np.mean(fold0))
    # the run noise (SD 0.01) shared within a fold x seed cancels: paired SD is about 0.004 * sqrt(2) / sqrt(2)
    rows = compare_arms(evaluations)
    sds = [r["sd"] for r in rows if r["metric"] == "accuracy" and r["reference"] == "baseline"]
    assert max(sds) < 0.009
    # a run without its baseline is left out; its fold still counts through the other seed
    dropped = [e for e in evaluations if not (e["arm"] == "baseline" and e["fold"] == 0 and e["seed"] == 0
                                              and e["classifier"] == CLASSIFIERS[0])]
    rows = compare_arms(dropped)
    n = {r["n"] for r in rows if r["classifier"] == CLASSIFIERS[0] and r["reference"] == "baseline"}
    assert n == {len(FOLDS)}


def _correlated_seed_study(folds: int, repeats: int, seeds: int, rng) -> list[dict]:
    """Evaluations in which every seed of a unit gives exactly the same result (perfectly correlated seeds)."""
    out = []
    for repeat in range(repeats):
        for fold in range(folds):
            base, gain = 0.7 + rng.normal(0, 0.02), 0.01 + rng.normal(0, 0.01)
            for seed in range(seeds):
                for arm, gen, amount, acc in (("baseline", None, 0, base), ("synthetic", "g", 10, base + gain)):
                    out.append(dict(classifier="c", repeat=repeat, fold=fold, seed=seed, arm=arm, generator=gen,
                                    amount=amount, results={"accuracy": acc}, f1={}))
    return out


@pytest.mark.parametrize("folds,repeats", [(5, 1), (3, 2)])
def test_perfectly_correlated_seeds_do_not_add_units(folds, repeats):
    rng = np.random.default_rng(3)
    one_seed = _correlated_seed_study(folds, repeats, 1, np.random.default_rng(3))
    many_seeds = _correlated_seed_study(folds, repeats, 10, rng)
    ratio = 1 / (folds - 1)
    few = [r for r in compare_arms(one_seed, ratio=ratio) if r["metric"] == "accuracy"]
    many = [r for r in compare_arms(many_seeds, ratio=ratio) if r["metric"] == "accuracy"]
    assert few[0]["n"] == many[0]["n"] == folds * repeats
    # copies of a result are not evidence: ten identical seeds give the same t and p as one
    assert many[0]["statistic"] == pytest.approx(few[0]["statistic"]) and many[0]["p_value"] == pytest.approx(
        few[0]["p_value"])
    head = _headline(generator_effects(many_seeds, ratio=ratio))["g"]
    assert head["n"] == folds * repeats and head["p_value"] == pytest.approx(few[0]["p_value"])


def test_corrected_t_by_hand_from_scipy_values():
    rng = np.random.default_rng(7)
    evaluations = _correlated_seed_study(5, 2, 3, rng)
    for e in evaluations:  # seeds now differ a little within a unit
        e["results"] = {"accuracy": e["results"]["accuracy"] + rng.normal(0, 0.003)}
    sizes = {(r, f): {"train": 170, "val": 30, "test": 50} for r in range(2) for f in range(5)}
    ratio = resampling_ratio(sizes)
    assert ratio == pytest.approx(50 / 200)  # the fold's test / (train + validation), the k-fold ratio 1/(k-1)
    row = [r for r in compare_arms(evaluations, ratio=ratio) if r["metric"] == "accuracy"][0]
    # by hand: seed-averaged difference per (repeat, fold), then t = mean / sqrt((1/n + ratio) * var)
    acc = {(e["repeat"], e["fold"], e["arm"], e["seed"]): e["results"]["accuracy"] for e in evaluations}
    d = np.array([np.mean([acc[(r, f, "synthetic", s)] - acc[(r, f, "baseline", s)] for s in range(3)])
                  for r in range(2) for f in range(5)])
    n = 10
    t = d.mean() / math.sqrt((1 / n + 0.25) * np.var(d, ddof=1))
    assert row["n"] == n and row["statistic"] == pytest.approx(t, rel=1e-10)
    assert row["p_value"] == pytest.approx(2 * sps.t.sf(abs(t), n - 1), rel=1e-10)
    # the uncorrected statistic would be scipy's paired t-test on the same unit differences
    plain = sps.ttest_1samp(d, 0.0)
    assert t == pytest.approx(plain.statistic / math.sqrt(1 + n * 0.25), rel=1e-10)
    low, high = sps.t.interval(0.95, n - 1, loc=d.mean(), scale=math.sqrt((1 / n + 0.25) * np.var(d, ddof=1)))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), rel=1e-10)


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
    info = load_analysis(study, "toy")
    assert info["n_units"] == len(FOLDS) and info["unit"] == "n = 3 units; unit = fold (seeds averaged within a fold)"
    assert info["test_train_ratio"] == pytest.approx(40 / 100) and info["amounts"] == "10,20"
    assert {r["metric"] for r in load_headline(study, "toy", per_class=False)} == {
        "accuracy", "balanced_accuracy", "macro_f1"}
    analyse.run(ctx)  # re-running replaces, never duplicates
    assert len(load_comparisons(study, "toy")) == len(stored)
