"""Paired comparisons of a study's arms: each generator x classifier x amount against the real-only baseline and
against the count-matched duplicate-real control, paired by replication unit.

A unit is one fold of one repetition of the k-fold split, `(repeat, fold)`. Arms are paired run by run (same
classifier, unit and seed), and the differences of the seeds of one unit are averaged into one unit difference:
seeds share the split and the synthetic set, so they are not independent replicates.

Input is the list of evaluations from `xaug.store.analysis.load_study_evaluations`; output rows match the
`comparisons`, `headline` and `arm_summaries` tables.
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
CLASS_METRICS = ("precision", "recall", "f1")

Unit = tuple[int, int]
"""A replication unit: (repeat, fold)."""


@dataclass(frozen=True)
class ArmRun:
    """One evaluated classifier run of an arm."""

    generator: str
    classifier: str
    amount: int
    unit: Unit
    seed: int
    values: dict
    """(metric, class_name) -> value."""


def unit_of(evaluation: dict) -> Unit:
    """The replication unit of an evaluation: (repeat, fold); repeat 0 for studies without repeats."""
    return int(evaluation.get("repeat") or 0), int(evaluation["fold"])


def _values(evaluation: dict, classes: list[str] | None) -> dict:
    """(metric, class_name) -> value of one evaluation: overall metrics and per-class F1."""
    out = {(m, ""): evaluation["results"][m] for m in METRICS if m in evaluation["results"]}
    for class_name, f1 in evaluation["f1"].items():
        if classes is None or class_name in classes:
            out[("f1", class_name)] = f1
    return out


def index_runs(evaluations: list[dict], classes: list[str] | None = None) -> tuple[dict, dict, dict]:
    """Split evaluations into baseline[(classifier, unit, seed)], duplicate[(classifier, amount, unit, seed)] and
    synthetic[(generator, classifier, amount, unit, seed)] runs."""
    baseline, duplicate, synthetic = {}, {}, {}
    for e in evaluations:
        arm = e["arm"] or ("baseline" if e["amount"] == 0 else "synthetic")
        values, unit, seed = _values(e, classes), unit_of(e), e["seed"]
        if arm == "baseline":
            baseline[(e["classifier"], unit, seed)] = ArmRun("", e["classifier"], 0, unit, seed, values)
        elif arm == "duplicate":
            duplicate[(e["classifier"], e["amount"], unit, seed)] = ArmRun(
                DUPLICATE, e["classifier"], e["amount"], unit, seed, values)
        else:
            synthetic[(e["generator"], e["classifier"], e["amount"], unit, seed)] = ArmRun(
                e["generator"], e["classifier"], e["amount"], unit, seed, values)
    return baseline, duplicate, synthetic


def paired_deltas(evaluations: list[dict], classes: list[str] | None = None) -> dict:
    """(generator, classifier, amount, reference) -> {(metric, class): {unit: mean over seeds of arm - reference}}.

    Synthetic arms are paired with the baseline and with the duplicate control of the same amount; the duplicate
    control (generator '(duplicate)') is paired with the baseline. Runs are paired by classifier, unit and seed;
    unpaired runs are left out, and the seeds of a unit are averaged into one difference.
    """
    baseline, duplicate, synthetic = index_runs(evaluations, classes)
    seeds: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))

    def pair(run: ArmRun, reference: str, ref: ArmRun | None) -> None:
        if ref is None:
            return
        for key, value in run.values.items():
            if key in ref.values:
                seeds[(run.generator, run.classifier, run.amount, reference)][key][run.unit].append(
                    value - ref.values[key])

    for (gen, clf, amount, unit, seed), run in sorted(synthetic.items(), key=_sort_key):
        pair(run, "baseline", baseline.get((clf, unit, seed)))
        pair(run, "duplicate", duplicate.get((clf, amount, unit, seed)))
    for (clf, amount, unit, seed), run in sorted(duplicate.items(), key=_sort_key):
        pair(run, "baseline", baseline.get((clf, unit, seed)))
    return {arm: {metric: {unit: float(np.mean(v)) for unit, v in sorted(units.items())}
                  for metric, units in by_metric.items()}
            for arm, by_metric in seeds.items()}


def _sort_key(item):
    return tuple(str(x) for x in item[0])


def resampling_ratio(split_sizes: dict[Unit, dict[str, int]], n_folds: int | None = None) -> float:
    """n_test / n_train of the Nadeau-Bengio correction: each unit's test images over the images of its training
    partition (train + validation: every image not in the test split), averaged over units. Without recorded split
    sizes, the k-fold ratio 1/(k-1)."""
    ratios = [s["test"] / (s.get("train", 0) + s.get("val", 0)) for s in split_sizes.values()
              if s.get("test") and (s.get("train", 0) + s.get("val", 0))]
    if ratios:
        return float(np.mean(ratios))
    return 1.0 / (n_folds - 1) if n_folds and n_folds > 1 else 0.25


def count_units(evaluations: list[dict]) -> tuple[int, int]:
    """(number of replication units, number of repeats) among a study's evaluations."""
    units = {unit_of(e) for e in evaluations}
    return len(units), len({r for r, _ in units})


def compare_arms(evaluations: list[dict], *, test: str = "corrected_t", correction: str = "holm",
                 alpha: float = 0.05, ratio: float = 0.2, classes: list[str] | None = None) -> list[dict]:
    """Comparison rows (see the `comparisons` table) for every arm, reference, metric and class, with p-values
    adjusted over all arms of each (reference, metric, class) family."""
    rows = []
    for (gen, clf, amount, reference), by_metric in paired_deltas(evaluations, classes).items():
        for (metric, class_name), units in by_metric.items():
            summary = paired_summary(list(units.values()), test=test, test_train_ratio=ratio, alpha=alpha)
            rows.append(dict(generator=gen, classifier=clf, amount=amount, reference=reference, metric=metric,
                             class_name=class_name, **_summary_fields(summary), correction=correction))
    _adjust(rows, correction, ("reference", "metric", "class_name"))
    return rows


def _adjust(rows: list[dict], correction: str, family: tuple[str, ...]) -> None:
    """Set `p_adjusted` of each row, adjusting within the rows that share the `family` columns."""
    families: dict = defaultdict(list)
    for i, row in enumerate(rows):
        families[tuple(row[c] for c in family)].append(i)
    for members in families.values():
        adjusted = adjust_p_values([rows[i]["p_value"] for i in members], correction)
        for i, p in zip(members, adjusted):
            rows[i]["p_adjusted"] = None if math.isnan(p) else float(p)


def family_size(rows: list[dict]) -> int:
    """The largest number of arms in one (reference, metric, class) family: what the correction is over."""
    counts: dict = defaultdict(int)
    for row in rows:
        counts[(row["reference"], row["metric"], row["class_name"])] += 1
    return max(counts.values(), default=0)


def _summary_fields(summary: PairedSummary) -> dict:
    return dict(n=summary.n, mean=summary.mean, sd=summary.sd, ci_low=summary.ci_low, ci_high=summary.ci_high,
                statistic=summary.statistic, p_value=summary.p_value, test=summary.test)


def common_amounts(evaluations: list[dict]) -> list[int]:
    """Synthetic amounts every generator of the study was run with (the headline averages over these only, so
    that generators with extra amounts, e.g. the GAN's +5000, are compared on equal terms)."""
    per_generator: dict = defaultdict(set)
    for e in evaluations:
        if (e["arm"] or "synthetic") == "synthetic" and e["amount"]:
            per_generator[e["generator"]].add(e["amount"])
    if not per_generator:  # a study with only the duplicate control: its amounts
        return sorted({e["amount"] for e in evaluations if e["arm"] == "duplicate"})
    return sorted(set.intersection(*per_generator.values()))


def generator_effects(evaluations: list[dict], *, classes: list[str] | None = None, alpha: float = 0.05,
                      ratio: float = 0.0, test: str = "corrected_t", correction: str = "holm") -> list[dict]:
    """The headline: each generator's effect averaged over classifiers and the amounts common to all generators,
    for accuracy, balanced accuracy, macro-F1 and per-class F1, against the baseline and against the duplicate
    control, one difference per unit. Rows match the `headline` table plus `units` {(repeat, fold): difference};
    p-values are adjusted across generators within each (reference, metric, class). The duplicate control appears
    as '(duplicate)' against the baseline (and is part of that family)."""
    amounts = set(common_amounts(evaluations))
    per_unit: dict = defaultdict(lambda: defaultdict(list))
    for (gen, _clf, amount, ref), by_metric in paired_deltas(evaluations, classes).items():
        if amount not in amounts:
            continue
        for (metric, class_name), units in by_metric.items():
            for unit, delta in units.items():
                per_unit[(gen, ref, metric, class_name)][unit].append(delta)
    rows = []
    for (gen, ref, metric, class_name), units in sorted(per_unit.items(), key=lambda kv: _headline_order(kv[0])):
        unit_means = {u: float(np.mean(v)) for u, v in sorted(units.items())}
        summary = paired_summary(list(unit_means.values()), test=test, test_train_ratio=ratio, alpha=alpha)
        rows.append(dict(generator=gen, reference=ref, metric=metric, class_name=class_name,
                         **_summary_fields(summary), correction=correction,
                         amounts=",".join(str(a) for a in sorted(amounts)), units=unit_means))
    _adjust(rows, correction, ("reference", "metric", "class_name"))
    return rows


def _headline_order(key: tuple) -> tuple:
    gen, ref, metric, class_name = key
    rank = METRICS.index(metric) if metric in METRICS else len(METRICS)
    return (REFERENCES.index(ref), rank, class_name, gen == DUPLICATE, gen)


def arm_summaries(evaluations: list[dict]) -> list[dict]:
    """Per classifier, arm and metric (overall results and per-class precision/recall/F1): the mean and SD over
    units of the unit means (seeds averaged within a unit), n units and the seeds per unit, per test set. Rows
    match the `arm_summaries` table; they are what `xaug results` and the report's baseline and external tables
    print."""
    values: dict = defaultdict(lambda: defaultdict(list))
    for e in evaluations:
        arm = e["arm"] or ("baseline" if e["amount"] == 0 else "synthetic")
        group = (e["classifier"], arm, e["generator"] or "", int(e["amount"] or 0), e.get("test_set", "test"))
        for name, value in e["results"].items():
            if value is not None:
                values[(*group, name, "")][unit_of(e)].append(value)
        for class_name, metrics in (e.get("class_metrics") or {}).items():
            for name in CLASS_METRICS:
                if metrics.get(name) is not None:
                    values[(*group, name, class_name)][unit_of(e)].append(metrics[name])
    rows = []
    for (clf, arm, gen, amount, test_set, metric, class_name), units in values.items():
        means = np.array([np.mean(v) for v in units.values()])
        rows.append(dict(classifier=clf, arm=arm, generator=gen, amount=amount, metric=metric,
                         class_name=class_name, n=int(means.size), seeds=max(len(v) for v in units.values()),
                         mean=float(means.mean()), sd=float(means.std(ddof=1)) if means.size > 1 else None,
                         test_set=test_set))
    return rows
