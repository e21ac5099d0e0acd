"""Paired comparisons of a study's arms: each generator x classifier x amount against the real-only baseline and
against the count-matched duplicate-real control, run by run (same classifier, fold and seed).

Input is the list of evaluations from `xaug.store.analysis.load_study_evaluations`; output rows match the
`comparisons` table.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from xaug.engine.analysis.stats import PairedSummary, adjust_p_values, paired_summary

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
"""Overall metrics compared (class_name ''); per-class F1 is compared as metric 'f1' with the class name."""
DUPLICATE = "(duplicate)"
"""Generator name of the duplicate-real control arm when it is itself compared with the baseline."""
REFERENCES = ("baseline", "duplicate")


@dataclass(frozen=True)
class ArmRun:
    """One evaluated classifier run of an arm."""

    generator: str
    classifier: str
    amount: int
    fold: int
    seed: int
    values: dict
    """(metric, class_name) -> value."""


def _values(evaluation: dict, classes: list[str] | None) -> dict:
    """(metric, class_name) -> value of one evaluation: overall metrics and per-class F1."""
    out = {(m, ""): evaluation["results"][m] for m in METRICS if m in evaluation["results"]}
    for class_name, f1 in evaluation["f1"].items():
        if classes is None or class_name in classes:
            out[("f1", class_name)] = f1
    return out


def index_runs(evaluations: list[dict], classes: list[str] | None = None) -> tuple[dict, dict, dict]:
    """Split evaluations into baseline[(classifier, fold, seed)], duplicate[(classifier, amount, fold, seed)] and
    synthetic[(generator, classifier, amount, fold, seed)] runs."""
    baseline, duplicate, synthetic = {}, {}, {}
    for e in evaluations:
        arm = e["arm"] or ("baseline" if e["amount"] == 0 else "synthetic")
        values = _values(e, classes)
        if arm == "baseline":
            baseline[(e["classifier"], e["fold"], e["seed"])] = ArmRun("", e["classifier"], 0, e["fold"], e["seed"],
                                                                        values)
        elif arm == "duplicate":
            duplicate[(e["classifier"], e["amount"], e["fold"], e["seed"])] = ArmRun(
                DUPLICATE, e["classifier"], e["amount"], e["fold"], e["seed"], values)
        else:
            synthetic[(e["generator"], e["classifier"], e["amount"], e["fold"], e["seed"])] = ArmRun(
                e["generator"], e["classifier"], e["amount"], e["fold"], e["seed"], values)
    return baseline, duplicate, synthetic


def paired_deltas(evaluations: list[dict], classes: list[str] | None = None) -> dict:
    """(generator, classifier, amount, reference) -> {(metric, class): [(fold, seed, arm - reference), ...]}.

    Synthetic arms are paired with the baseline and with the duplicate control of the same amount; the duplicate
    control (generator '(duplicate)') is paired with the baseline. Unpaired runs are left out.
    """
    baseline, duplicate, synthetic = index_runs(evaluations, classes)
    out: dict = defaultdict(lambda: defaultdict(list))

    def pair(run: ArmRun, reference: str, ref: ArmRun | None) -> None:
        if ref is None:
            return
        for key, value in run.values.items():
            if key in ref.values:
                out[(run.generator, run.classifier, run.amount, reference)][key].append(
                    (run.fold, run.seed, value - ref.values[key]))

    for (gen, clf, amount, fold, seed), run in sorted(synthetic.items(), key=_sort_key):
        pair(run, "baseline", baseline.get((clf, fold, seed)))
        pair(run, "duplicate", duplicate.get((clf, amount, fold, seed)))
    for (clf, amount, fold, seed), run in sorted(duplicate.items(), key=_sort_key):
        pair(run, "baseline", baseline.get((clf, fold, seed)))
    return out


def _sort_key(item):
    return tuple(str(x) for x in item[0])


def resampling_ratio(evaluations: list[dict], split_sizes: dict[int, dict[str, int]]) -> float:
    """n_test / n_train of the Nadeau-Bengio correction: test images (class supports) over real training images,
    averaged over folds; 1/(k-1) for k folds when split sizes were not recorded."""
    ratios = []
    for e in evaluations:
        n_train = split_sizes.get(e["fold"], {}).get("train")
        if n_train and e.get("n_test"):
            ratios.append(e["n_test"] / n_train)
    if ratios:
        return float(np.mean(ratios))
    folds = {e["fold"] for e in evaluations}
    return 1.0 / (len(folds) - 1) if len(folds) > 1 else 0.25


def compare_arms(evaluations: list[dict], *, test: str = "corrected_t", correction: str = "holm",
                 alpha: float = 0.05, ratio: float = 0.2, classes: list[str] | None = None) -> list[dict]:
    """Comparison rows (see the `comparisons` table) for every arm, reference, metric and class, with p-values
    adjusted over all arms of each (reference, metric, class) family."""
    rows = []
    for (gen, clf, amount, reference), by_metric in paired_deltas(evaluations, classes).items():
        for (metric, class_name), triples in by_metric.items():
            summary = paired_summary([d for _, _, d in triples], test=test, test_train_ratio=ratio, alpha=alpha)
            rows.append(dict(generator=gen, classifier=clf, amount=amount, reference=reference, metric=metric,
                             class_name=class_name, **_summary_fields(summary), correction=correction))
    families: dict = defaultdict(list)
    for i, row in enumerate(rows):
        families[(row["reference"], row["metric"], row["class_name"])].append(i)
    for members in families.values():
        adjusted = adjust_p_values([rows[i]["p_value"] for i in members], correction)
        for i, p in zip(members, adjusted):
            rows[i]["p_adjusted"] = None if math.isnan(p) else float(p)
    return rows


def family_size(rows: list[dict]) -> int:
    """The largest number of arms in one (reference, metric, class) family: what the correction is over."""
    counts: dict = defaultdict(int)
    for row in rows:
        counts[(row["reference"], row["metric"], row["class_name"])] += 1
    return max(counts.values(), default=0)


def _summary_fields(summary: PairedSummary) -> dict:
    return dict(n=summary.n, mean=summary.mean, sd=summary.sd, ci_low=summary.ci_low, ci_high=summary.ci_high,
                statistic=summary.statistic, p_value=summary.p_value, test=summary.test)


def generator_effects(evaluations: list[dict], metric: str = "accuracy", class_name: str = "",
                      reference: str = "baseline", *, alpha: float = 0.05, ratio: float = 0.0,
                      test: str = "corrected_t", classes: list[str] | None = None) -> dict[str, dict]:
    """Each generator's effect averaged over classifiers and amounts (the paper's headline number), paired per
    fold x seed: {generator: {'summary': PairedSummary, 'units': {(fold, seed): mean delta},
    'folds': {fold: mean delta}}}. The duplicate control appears as '(duplicate)' (against the baseline)."""
    per_unit: dict = defaultdict(lambda: defaultdict(list))
    for (gen, _clf, _amount, ref), by_metric in paired_deltas(evaluations, classes).items():
        if ref != reference:
            continue
        for fold, seed, delta in by_metric.get((metric, class_name), []):
            per_unit[gen][(fold, seed)].append(delta)
    out = {}
    for gen, units in sorted(per_unit.items()):
        unit_means = {u: float(np.mean(v)) for u, v in sorted(units.items())}
        by_fold: dict = defaultdict(list)
        for (fold, _seed), value in unit_means.items():
            by_fold[fold].append(value)
        out[gen] = dict(summary=paired_summary(list(unit_means.values()), test=test, test_train_ratio=ratio,
                                               alpha=alpha),
                        units=unit_means, folds={f: float(np.mean(v)) for f, v in sorted(by_fold.items())})
    return out
