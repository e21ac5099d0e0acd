"""Correlations of quality with utility: scipy's r and p, Fisher-z CIs, n, and too-small samples."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from xaug.engine.analysis.correlate import correlation, quality_by_generator, quality_utility_correlations

X = [30.0, 45.0, 52.0, 61.0, 80.0, 95.0]
Y = [0.012, 0.004, 0.006, -0.003, -0.010, -0.015]


def test_pearson_matches_scipy_with_fisher_ci():
    out = correlation(X, Y, "pearson")
    ref = sps.pearsonr(X, Y)
    assert out["r"] == pytest.approx(ref.statistic) and out["p_value"] == pytest.approx(ref.pvalue)
    z, se = math.atanh(ref.statistic), 1 / math.sqrt(len(X) - 3)
    assert out["ci_low"] == pytest.approx(math.tanh(z - 1.959963984540054 * se))
    assert out["ci_high"] == pytest.approx(math.tanh(z + 1.959963984540054 * se))
    assert out["n"] == 6 and out["ci_low"] < out["r"] < out["ci_high"]


def test_spearman_matches_scipy_and_its_ci_is_wider():
    out = correlation(X, Y, "spearman")
    ref = sps.spearmanr(X, Y)
    assert out["r"] == pytest.approx(ref.statistic) and out["p_value"] == pytest.approx(ref.pvalue)
    assert out["ci_low"] is not None and out["ci_high"] <= 1


def test_small_or_constant_samples():
    three = correlation(X[:3], Y[:3], "pearson")
    assert three["r"] is not None and three["ci_low"] is None and three["n"] == 3
    assert correlation(X[:2], Y[:2])["r"] is None
    assert correlation([1, 1, 1, 1], Y[:4])["r"] is None
    assert correlation([1, 2, np.nan, 4, 5], [2, 1, 3, 5, 4])["n"] == 4


def test_quality_utility_rows_pair_by_generator():
    quality_rows = [dict(generator=g, fold=f, class_name="", metric="fid", features="inception", value=v + f)
                    for g, v in (("a", 10), ("b", 20), ("c", 30), ("d", 40)) for f in (0, 1)]
    quality_rows.append(dict(generator="a", fold=0, class_name="viral", metric="fid", features="inception",
                             value=999))  # per-class rows are not the overall quality
    quality = quality_by_generator(quality_rows)
    assert quality["fid/inception"]["a"] == pytest.approx(10.5)
    rows = quality_utility_correlations(quality, {"a": 0.03, "b": 0.02, "c": 0.01, "d": 0.0, "e": 1.0}, "u")
    spearman = next(r for r in rows if r["method"] == "spearman")
    assert spearman["n"] == 4 and spearman["r"] == pytest.approx(-1.0)
