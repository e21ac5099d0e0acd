"""Paired statistics across folds x seeds: summary with a t-based CI, Wilcoxon signed-rank, the Nadeau-Bengio
corrected resampled t-test, and multiple-comparison corrections (Holm, Bonferroni, Benjamini-Hochberg).

Why the correction of the t-test: the fold x seed runs share most of their training data, so their differences
are positively correlated and a plain paired t-test is overconfident. Nadeau & Bengio (2003) inflate the variance
from 1/J to 1/J + n_test/n_train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

TESTS = ("wilcoxon", "corrected_t")
CORRECTIONS = ("holm", "bonferroni", "fdr_bh", "none")


@dataclass(frozen=True)
class PairedSummary:
    """Mean, SD and CI of paired differences, and a test of mean (median) zero."""

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    test: str


def t_interval(deltas: np.ndarray, alpha: float = 0.05, test_train_ratio: float = 0.0) -> tuple[float, float]:
    """(1 - alpha) t-based CI of the mean difference; with test_train_ratio > 0 the variance is Nadeau-Bengio
    corrected (then the CI agrees with the corrected t-test). NaN when fewer than two differences."""
    d = np.asarray(deltas, dtype=float)
    n = d.size
    if n < 2:
        return math.nan, math.nan
    se = math.sqrt((1.0 / n + test_train_ratio) * d.var(ddof=1))
    if se == 0:
        return float(d.mean()), float(d.mean())
    low, high = stats.t.interval(1 - alpha, n - 1, loc=d.mean(), scale=se)
    return float(low), float(high)


def corrected_t_test(deltas: np.ndarray, test_train_ratio: float) -> tuple[float, float]:
    """Nadeau-Bengio corrected resampled t-test of mean zero: (t, two-sided p). Ratio 0 is the paired t-test."""
    d = np.asarray(deltas, dtype=float)
    n = d.size
    if n < 2:
        return math.nan, math.nan
    var = d.var(ddof=1)
    if var == 0:
        return (0.0, 1.0) if d.mean() == 0 else (math.copysign(math.inf, d.mean()), 0.0)
    t = d.mean() / math.sqrt((1.0 / n + test_train_ratio) * var)
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
    """Summarise paired differences (one per fold x seed) with mean, SD, CI and the chosen test.

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
    """Adjusted p-values for a family of tests (NaN entries are left out of the family and stay NaN).

    holm: step-down Holm-Bonferroni; bonferroni: p x m; fdr_bh: Benjamini-Hochberg step-up; none: unchanged.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction '{method}'; known corrections: {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = ~np.isnan(p)
    q = p[valid]
    m = q.size
    if m == 0:
        return out
    if method == "none":
        adjusted = q.copy()
    elif method == "bonferroni":
        adjusted = np.minimum(q * m, 1.0)
    elif method == "holm":
        order = np.argsort(q, kind="stable")
        stepped = np.maximum.accumulate(q[order] * (m - np.arange(m)))
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(stepped, 1.0)
    else:  # fdr_bh
        order = np.argsort(q, kind="stable")
        ranked = q[order] * m / np.arange(1, m + 1)
        stepped = np.minimum.accumulate(ranked[::-1])[::-1]
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(stepped, 1.0)
    out[valid] = adjusted
    return out


def describe_correction(method: str, family_size: int, alpha: float) -> str:
    """One sentence stating the multiple-comparison correction, for reports."""
    names = {"holm": "Holm-Bonferroni step-down", "bonferroni": "Bonferroni", "fdr_bh": "Benjamini-Hochberg FDR",
             "none": "no"}
    if method == "none":
        return f"No multiple-comparison correction was applied (alpha = {alpha})."
    return (f"p-values are adjusted with the {names[method]} correction over the {family_size} arms compared for "
            f"each metric and reference (alpha = {alpha}).")
