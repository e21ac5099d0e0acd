"""Paired tests, CIs and multiple-comparison corrections against scipy and hand-computed answers."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from xaug.engine.analysis.stats import (adjust_p_values, corrected_t_test, describe_correction, paired_summary,
                                        t_interval, wilcoxon_test)

A = np.array([0.781, 0.770, 0.802, 0.765, 0.790, 0.775, 0.799, 0.784, 0.771, 0.788])
B = np.array([0.770, 0.772, 0.781, 0.750, 0.779, 0.776, 0.781, 0.770, 0.769, 0.772])
D = A - B


def test_t_interval_matches_scipy():
    low, high = t_interval(D, alpha=0.05)
    ref = sps.t.interval(0.95, len(D) - 1, loc=D.mean(), scale=sps.sem(D))
    assert (low, high) == pytest.approx(ref, rel=1e-12)
    low90, high90 = t_interval(D, alpha=0.10)
    assert low90 > low and high90 < high


def test_uncorrected_t_test_matches_scipy_ttest_rel():
    t, p = corrected_t_test(D, test_train_ratio=0.0)
    ref = sps.ttest_rel(A, B)
    assert t == pytest.approx(ref.statistic, rel=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-10)


def test_nadeau_bengio_correction_by_hand():
    ratio = 0.25  # 5-fold: n_test / n_train = 1/4
    t, p = corrected_t_test(D, ratio)
    expected_t = D.mean() / math.sqrt((1 / len(D) + ratio) * D.var(ddof=1))
    assert t == pytest.approx(expected_t, rel=1e-12)
    assert p == pytest.approx(2 * sps.t.sf(abs(expected_t), len(D) - 1), rel=1e-10)
    assert p > sps.ttest_rel(A, B).pvalue  # the correction is more conservative
    # the corrected CI is the CI of the same variance, and contains 0 exactly when p > alpha
    low, high = t_interval(D, 0.05, ratio)
    assert (low < 0 < high) == (p > 0.05)
    assert high - low == pytest.approx(2 * sps.t.ppf(0.975, 9) * math.sqrt((0.1 + ratio) * D.var(ddof=1)))


def test_wilcoxon_matches_scipy():
    w, p = wilcoxon_test(D)
    ref = sps.wilcoxon(A, B)
    assert w == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)


def test_degenerate_differences():
    assert wilcoxon_test(np.zeros(5)) == (0.0, 1.0)
    assert corrected_t_test(np.zeros(5), 0.2) == (0.0, 1.0)
    assert math.isnan(corrected_t_test(np.array([0.1]), 0.2)[1])
    summary = paired_summary([0.01], test="wilcoxon")
    assert summary.n == 1 and math.isnan(summary.sd) and math.isnan(summary.p_value)


def test_paired_summary_fields():
    s = paired_summary(D, test="corrected_t", test_train_ratio=0.0)
    assert s.n == 10 and s.mean == pytest.approx(D.mean()) and s.sd == pytest.approx(D.std(ddof=1))
    assert s.p_value == pytest.approx(sps.ttest_rel(A, B).pvalue)
    w = paired_summary(D, test="wilcoxon", test_train_ratio=0.3)  # ratio ignored: plain t interval
    assert (w.ci_low, w.ci_high) == pytest.approx(t_interval(D, 0.05))
    assert w.p_value == pytest.approx(sps.wilcoxon(D).pvalue)
    with pytest.raises(ValueError, match="known tests"):
        paired_summary(D, test="anova")


def test_holm_bonferroni_and_bh_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    assert adjust_p_values(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_p_values(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    # BH: sorted p*m/rank = 0.02, 0.02, 0.04, 0.04 (already monotone)
    assert adjust_p_values(p, "fdr_bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_p_values(p, "none") == pytest.approx(p)
    assert adjust_p_values([0.6, 0.9], "holm") == pytest.approx([1.0, 1.0])


def test_nan_p_values_are_left_out_of_the_family():
    out = adjust_p_values([0.01, float("nan"), 0.02], "bonferroni")
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)


def test_correction_is_stated():
    assert "Holm" in describe_correction("holm", 12, 0.05) and "12 arms" in describe_correction("holm", 12, 0.05)
    assert "No multiple-comparison" in describe_correction("none", 3, 0.05)


def test_units_are_described():
    from xaug.engine.analysis.stats import describe_units

    assert describe_units(3) == "n = 3 units; unit = fold (seeds averaged within a fold)"
    assert describe_units(10, 2) == ("n = 10 units; unit = repeat x fold (seeds averaged within a fold; 2 repeats "
                                     "of k-fold)")
