"""A study's whole analysis from what is in the store: paired comparisons of every arm, the per-generator effects,
and the correlation of image quality with utility. Pure reads; the analyse job records the result."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlite_utils

from xaug.engine.analysis.compare import (DUPLICATE, compare_arms, family_size, generator_effects,
                                          resampling_ratio)
from xaug.engine.analysis.correlate import quality_by_generator, quality_utility_correlations, ratings_by_generator
from xaug.engine.analysis.stats import describe_correction
from xaug.engine.errors import StoreError
from xaug.engine.recipe.schema import AnalysisConfig
from xaug.store.analysis import load_split_sizes, load_study_evaluations, load_study_ratings
from xaug.store.quality import load_study_quality
from xaug.store.studies import load_study

UTILITY = "delta_accuracy"
"""Utility of a generator: mean change in accuracy vs the baseline over classifiers, amounts, folds and seeds."""
UTILITY_PER_FOLD = "delta_accuracy_per_fold"
"""The same per generator x fold, correlated with that fold's image quality (more points, not independent)."""


@dataclass
class StudyAnalysis:
    """Everything a report or the TUI shows about a study's statistics."""

    study: str
    analysis: AnalysisConfig
    evaluations: list[dict]
    comparisons: list[dict]
    correlations: list[dict]
    effects: dict[str, dict]
    """generator -> effect on accuracy averaged over classifiers and amounts (see compare.generator_effects)."""
    quality: list[dict] = field(default_factory=list)
    ratio: float = 0.0
    """n_test/n_train used by the corrected t-test."""
    correction_note: str = ""
    classes: list[str] = field(default_factory=list)
    ratings: dict[str, dict] = field(default_factory=dict)
    """Mean reader scores per generator: {'reader_quality': {generator: mean}, 'reader_plausibility': {...}}."""


def study_settings(db: sqlite_utils.Database, study: str) -> tuple[AnalysisConfig, list[str]]:
    """The analysis settings and class names of a stored study (defaults where the recipe has none)."""
    row = load_study(db, study)
    if row is None:
        raise StoreError(f"there is no study '{study}' in this store; `xaug results` lists the studies, "
                         "`xaug submit RECIPE` adds one")
    recipe = row["recipe"]
    analysis = AnalysisConfig(**recipe.get("analysis", {}))
    classes = (recipe.get("dataset") or {}).get("classes") or []
    return analysis, list(classes)


def analyse_study(db: sqlite_utils.Database, study: str, analysis: AnalysisConfig | dict | None = None,
                  classes: list[str] | None = None) -> StudyAnalysis:
    """Compare every arm of a study with its references, summarise generator effects and correlate quality with
    utility; `analysis`/`classes` default to the stored recipe's."""
    if analysis is None or classes is None:
        stored_analysis, stored_classes = study_settings(db, study)
        analysis = stored_analysis if analysis is None else analysis
        classes = classes if classes is not None else stored_classes
    if isinstance(analysis, dict):
        analysis = AnalysisConfig(**analysis)
    evaluations = load_study_evaluations(db, study)
    if not classes:  # the order the evaluate jobs recorded them in (the study's class order)
        classes = list(dict.fromkeys(c for e in evaluations for c in e["f1"]))
    ratio = resampling_ratio(evaluations, load_split_sizes(db, study))
    comparisons = compare_arms(evaluations, test=analysis.test, correction=analysis.correction,
                               alpha=analysis.alpha, ratio=ratio, classes=classes)
    effects = generator_effects(evaluations, "accuracy", alpha=analysis.alpha, ratio=ratio, test=analysis.test)
    quality = load_study_quality(db, study)
    ratings = ratings_by_generator(load_study_ratings(db, study))
    correlations = _correlations(quality, ratings, effects, analysis.alpha)
    note = describe_correction(analysis.correction, family_size(comparisons), analysis.alpha)
    test_name = ("Nadeau-Bengio corrected resampled t-test (n_test/n_train = %.3f)" % ratio
                 if analysis.test == "corrected_t" else "Wilcoxon signed-rank test")
    note = (f"Paired across folds x seeds; {test_name}. {note} Confidence intervals are per comparison "
            "(not adjusted for multiplicity).")
    return StudyAnalysis(study, analysis, evaluations, comparisons, correlations, effects, quality, ratio, note,
                         list(classes), ratings)


def _correlations(quality: list[dict], ratings: dict[str, dict], effects: dict, alpha: float) -> list[dict]:
    """Quality (and reader scores) vs utility, per generator and per generator x fold."""
    gens = {g: e for g, e in effects.items() if g != DUPLICATE}
    utility = {g: e["summary"].mean for g, e in gens.items()}
    per_fold = {(g, f): v for g, e in gens.items() for f, v in e["folds"].items()}
    by_generator = quality_by_generator(quality)
    by_generator.update(ratings)
    rows = quality_utility_correlations(by_generator, utility, UTILITY, alpha)
    rows += quality_utility_correlations(quality_by_generator(quality, per_fold=True), per_fold, UTILITY_PER_FOLD,
                                         alpha)
    return rows
