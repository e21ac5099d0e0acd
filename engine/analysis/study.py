"""A study's whole analysis: computed once by the `analyse` job (`analyse_study` + `record_study_analysis`) and read
back by the report, `xaug results`, `xaug power` and the TUI (`load_study_analysis`): one statistics path.

What is computed: paired comparisons of every arm, the headline generator effects, per-arm summaries over units,
and the correlation of image quality with utility. The replication unit is one fold of one repetition of the
k-fold split, with the classifier seeds averaged inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlite_utils

from xaug.engine.analysis.compare import (DUPLICATE, arm_summaries, common_amounts, compare_arms, count_units,
                                          family_size, generator_effects, resampling_ratio)
from xaug.engine.analysis.correlate import quality_by_generator, quality_utility_correlations, ratings_by_generator
from xaug.engine.analysis.stats import describe_correction, describe_units
from xaug.engine.data.splits import EXTERNAL
from xaug.engine.recipe.schema import AnalysisConfig
from xaug.store.analysis import (load_analysis, load_arm_summaries, load_comparisons, load_correlations,
                                 load_headline, load_split_sizes, load_study_evaluations, load_study_ratings,
                                 record_analysis, record_comparisons, record_correlations)
from xaug.store.quality import load_study_quality
from xaug.store.studies import require_study, study_classes

UTILITY = "delta_accuracy"
"""Utility of a generator: its headline change in accuracy vs the baseline (classifiers and common amounts)."""
UTILITY_PER_FOLD = "delta_accuracy_per_fold"
"""The same per generator x unit, correlated with that unit's image quality (more points, not independent)."""


@dataclass
class StudyAnalysis:
    """Everything a report, `xaug results`, `xaug power` or the TUI shows about a study's statistics."""

    study: str
    analysis: AnalysisConfig
    info: dict
    """The `analyses` row: n_units, repeats, unit (the sentence printed under every table), test, correction,
    alpha, test_train_ratio, amounts (common to all generators, used by the headline), note."""
    comparisons: list[dict] = field(default_factory=list)
    headline: list[dict] = field(default_factory=list)
    """Generator effects (see compare.generator_effects), all metrics, both references."""
    arm_summaries: list[dict] = field(default_factory=list)
    correlations: list[dict] = field(default_factory=list)
    quality: list[dict] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    ratings: dict[str, dict] = field(default_factory=dict)
    """Mean reader scores per generator: {'reader_quality': {generator: mean}, 'reader_plausibility': {...}}."""
    external_summaries: list[dict] = field(default_factory=list)
    """arm_summaries on the external test set (dataset.external_test); no statistics are computed from them."""

    @property
    def unit(self) -> str:
        """'n = 3 units; unit = fold (seeds averaged within a fold)'."""
        return self.info.get("unit", "")

    @property
    def note(self) -> str:
        """The test, correction and unit in two sentences, for captions."""
        return self.info.get("note", "")


def study_settings(db: sqlite_utils.Database, study: str) -> tuple[AnalysisConfig, list[str]]:
    """The analysis settings (defaults where the recipe has none) and class names of a stored study, in the
    store's one study class order (store.studies.study_classes, which the TUI reads too)."""
    recipe = require_study(db, study)["recipe"]
    return AnalysisConfig(**recipe.get("analysis", {})), study_classes(db, study)


def analyse_study(db: sqlite_utils.Database, study: str, analysis: AnalysisConfig | dict | None = None,
                  classes: list[str] | None = None) -> StudyAnalysis:
    """Compute the study's statistics from its evaluations; `analysis`/`classes` default to the stored recipe's."""
    if analysis is None or classes is None:
        stored_analysis, stored_classes = study_settings(db, study)
        analysis = stored_analysis if analysis is None else analysis
        classes = classes if classes is not None else stored_classes
    if isinstance(analysis, dict):
        analysis = AnalysisConfig(**analysis)
    evaluations = load_study_evaluations(db, study)
    if not classes:  # the order the evaluate jobs recorded them in (the study's class order)
        classes = list(dict.fromkeys(c for e in evaluations for c in e["f1"]))
    n_units, repeats = count_units(evaluations)
    ratio = resampling_ratio(load_split_sizes(db, study), len({e["fold"] for e in evaluations}))
    settings = dict(test=analysis.test, correction=analysis.correction, alpha=analysis.alpha, ratio=ratio)
    comparisons = compare_arms(evaluations, classes=classes, **settings)
    headline = generator_effects(evaluations, classes=classes, **settings)
    quality = load_study_quality(db, study)
    ratings = ratings_by_generator(load_study_ratings(db, study))
    info = dict(n_units=n_units, repeats=max(repeats, 1), unit=describe_units(n_units, repeats),
                test=analysis.test, correction=analysis.correction, alpha=analysis.alpha,
                test_train_ratio=ratio,
                amounts=",".join(str(a) for a in common_amounts(evaluations)))
    info["note"] = _note(info, family_size(comparisons))
    external = arm_summaries(load_study_evaluations(db, study, test_set=EXTERNAL))
    return StudyAnalysis(study, analysis, info, comparisons, headline, arm_summaries(evaluations),
                         _correlations(quality, ratings, headline, analysis.alpha), quality, list(classes), ratings,
                         external)


def _note(info: dict, arms: int) -> str:
    """Unit, test and correction in words, for every table's caption."""
    test = (f"Nadeau-Bengio corrected resampled t-test (n_test/n_train = {info['test_train_ratio']:.3f})"
            if info["test"] == "corrected_t" else "Wilcoxon signed-rank test")
    return (f"{info['unit']}; paired by unit; {test}. {describe_correction(info['correction'], arms, info['alpha'])}"
            f" Confidence intervals ({(1 - info['alpha']) * 100:.0f}%) are per comparison (not adjusted for "
            "multiplicity).")


def record_study_analysis(db: sqlite_utils.Database, result: StudyAnalysis) -> None:
    """Store a computed analysis: the one set of rows every reader uses."""
    record_comparisons(db, result.study, result.comparisons)
    record_analysis(db, result.study, result.info, result.headline, result.arm_summaries + result.external_summaries)
    record_correlations(db, result.study, result.correlations)


def load_study_analysis(db: sqlite_utils.Database, study: str) -> StudyAnalysis:
    """The stored analysis of a study (empty rows, and an `info` saying so, before its analyse job ran)."""
    analysis, classes = study_settings(db, study)
    info = load_analysis(db, study) or dict(
        n_units=0, repeats=1, unit="n = 0 units (the analyse job has not run yet)", test=analysis.test,
        correction=analysis.correction, alpha=analysis.alpha, test_train_ratio=None, amounts="",
        note="No stored analysis yet: the study's analyse job has not run.")
    # The alpha the analysis was computed with governs CIs; markers use the same one.
    analysis = analysis.model_copy(update=dict(alpha=info["alpha"], test=info["test"],
                                               correction=info["correction"]))
    quality = load_study_quality(db, study)
    if not classes:
        classes = list(dict.fromkeys(r["class_name"] for r in load_arm_summaries(db, study, per_class=True)))
    return StudyAnalysis(study, analysis, info, load_comparisons(db, study), load_headline(db, study),
                         load_arm_summaries(db, study), load_correlations(db, study), quality, classes,
                         ratings_by_generator(load_study_ratings(db, study)),
                         load_arm_summaries(db, study, test_set=EXTERNAL))


def _correlations(quality: list[dict], ratings: dict[str, dict], headline: list[dict], alpha: float) -> list[dict]:
    """Quality (and reader scores) vs utility, per generator and per generator x unit."""
    rows = [r for r in headline if r["generator"] != DUPLICATE and r["reference"] == "baseline"
            and r["metric"] == "accuracy" and r["class_name"] == ""]
    utility = {r["generator"]: r["mean"] for r in rows}
    per_unit = {(r["generator"], unit): v for r in rows for unit, v in r["units"].items()}
    by_generator = quality_by_generator(quality)
    by_generator.update(ratings)
    out = quality_utility_correlations(by_generator, utility, UTILITY, alpha)
    out += quality_utility_correlations(quality_by_generator(quality, per_fold=True), per_unit, UTILITY_PER_FOLD,
                                        alpha)
    return out
