"""Paired statistics over replication units: summary with a t-based CI, Wilcoxon signed-rank, the Nadeau-Bengio
corrected resampled t-test, multiple-comparison corrections (statsmodels), and the power of the corrected test.

The unit of replication is one fold of one repetition of the k-fold split, with the classifier seeds averaged
inside it: seeds that share a split and a synthetic set are not independent, so they are never counted as units.

Why the correction of the t-test: the k training sets of a k-fold split share (k-2)/(k-1) of their images, so
fold-level differences are positively correlated and a plain paired t-test is overconfident. Nadeau & Bengio
(2003) inflate the variance of the mean of J differences from 1/J to 1/J + n_test/n_train, with n_test/n_train
the fold's test/train ratio (1/(k-1) for k equal folds; Bouckaert & Frank 2004 for repeated k-fold, J = k x r).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

TESTS = ("wilcoxon", "corrected_t")
CORRECTIONS = ("holm", "bonferroni", "fdr_bh", "none")


@dataclass(frozen=True)
class PairedSummary:
    """Mean, SD and CI of paired unit-level differences, and a test of mean (median) zero."""

    n: int
    """Number of replication units (folds x repeats), never folds x seeds."""
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    test: str


def variance_factor(n: int, test_train_ratio: float) -> float:
    """Nadeau-Bengio factor of the sample variance in the variance of the mean: 1/n + n_test/n_train."""
    return 1.0 / n + test_train_ratio


def t_interval(deltas: np.ndarray, alpha: float = 0.05, test_train_ratio: float = 0.0) -> tuple[float, float]:
    """(1 - alpha) t-based CI of the mean difference; with test_train_ratio > 0 the variance is Nadeau-Bengio
    corrected (then the CI agrees with the corrected t-test). NaN when fewer than two differences."""
    d = np.asarray(deltas, dtype=float)
    n = d.size
    if n < 2:
        return math.nan, math.nan
    se = math.sqrt(variance_factor(n, test_train_ratio) * d.var(ddof=1))
    if se == 0:
        return float(d.mean()), float(d.mean())
    low, high = stats.t.interval(1 - alpha, n - 1, loc=d.mean(), scale=se)
    return float(low), float(high)


def corrected_t_test(deltas: np.ndarray, test_train_ratio: float) -> tuple[float, float]:
    """Nadeau-Bengio corrected resampled t-test of mean zero: (t, two-sided p) with n - 1 degrees of freedom.

    t = mean / sqrt((1/n + n_test/n_train) * s^2); ratio 0 is the plain paired t-test."""
    d = np.asarray(deltas, dtype=float)
    n = d.size
    if n < 2:
        return math.nan, math.nan
    var = d.var(ddof=1)
    if var == 0:
        return (0.0, 1.0) if d.mean() == 0 else (math.copysign(math.inf, d.mean()), 0.0)
    t = d.mean() / math.sqrt(variance_factor(n, test_train_ratio) * var)
    p = 2 * stats.t.sf(abs(t), n - 1)
    return float(t), float(p)


def wilcoxon_test(deltas: np.ndarray) -> tuple[float, float]:
    """Wilcoxon signed-rank test of median zero (scipy, two-sided): (W, p); p = 1 when every difference is 0."""
    d = np.asarray(deltas, dtype=float)
    if d.size < 2:
        return math.nan, math.nan
    if np.all(d == 0):
        return 0.0, 1.0
    result = stats.wilcoxon(d)
    return float(result.statistic), float(result.pvalue)


def paired_summary(deltas, *, test: str = "corrected_t", test_train_ratio: float = 0.0,
                   alpha: float = 0.05) -> PairedSummary:
    """Summarise paired differences (one per replication unit) with mean, SD, CI and the chosen test.

    The CI uses the corrected variance when the test is corrected_t, the plain t interval otherwise.
    """
    if test not in TESTS:
        raise ValueError(f"unknown test '{test}'; known tests: {', '.join(TESTS)}")
    d = np.asarray(deltas, dtype=float)
    d = d[~np.isnan(d)]
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    ratio = test_train_ratio if test == "corrected_t" else 0.0
    low, high = t_interval(d, alpha, ratio)
    statistic, p = corrected_t_test(d, ratio) if test == "corrected_t" else wilcoxon_test(d)
    return PairedSummary(n, mean, sd, low, high, statistic, p, test)


def adjust_p_values(p_values, method: str = "holm") -> np.ndarray:
    """Adjusted p-values for a family of tests (statsmodels `multipletests`; NaN entries are left out of the
    family and stay NaN). holm: step-down Holm-Bonferroni; bonferroni; fdr_bh: Benjamini-Hochberg; none."""
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction '{method}'; known corrections: {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = ~np.isnan(p)
    if not valid.any():
        return out
    out[valid] = p[valid] if method == "none" else multipletests(p[valid], method=method)[1]
    return out


def describe_correction(method: str, family_size: int, alpha: float, what: str = "arms") -> str:
    """One sentence stating the multiple-comparison correction, for reports."""
    names = {"holm": "Holm-Bonferroni step-down", "bonferroni": "Bonferroni", "fdr_bh": "Benjamini-Hochberg FDR",
             "none": "no"}
    if method == "none":
        return f"No multiple-comparison correction was applied (alpha = {alpha})."
    return (f"p-values are adjusted with the {names[method]} correction over the {family_size} {what} compared "
            f"for each metric and reference (alpha = {alpha}).")


def unit_label(repeats: int = 1) -> str:
    """What one replication unit is: 'fold (seeds averaged within a fold)', or 'repeat x fold (...)'."""
    if repeats <= 1:
        return "fold (seeds averaged within a fold)"
    return f"repeat x fold (seeds averaged within a fold; {repeats} repeats of k-fold)"


def describe_units(n: int, repeats: int = 1) -> str:
    """'n = 3 units; unit = fold (seeds averaged within a fold)': what every table states under its numbers."""
    return f"n = {n} units; unit = {unit_label(repeats)}"
