"""Power of the study's paired test: how many folds x repeats a study needs to detect an effect of a given size,
from the variance of a finished pilot study's unit-level differences.

The corrected resampled t-test divides the mean of n unit differences by sqrt((1/n + r) s^2), r = n_test/n_train.
Its power is that of a one-sample two-sided t-test (scipy's noncentral t with n - 1 degrees of freedom, the same
computation as statsmodels' `TTestPower`, which the tests compare it with) at the noncentrality
effect / sqrt((1/n + r) s^2) = d sqrt(n) / sqrt(1 + n r), d = effect / s. Because r stays fixed while repeats add
units, the noncentrality never exceeds effect / (s sqrt(r)): some effects cannot be detected with k folds at any
number of repeats, and `required_repeats` says so instead of returning a huge number. We use scipy directly
because statsmodels' power returns NaN at the large noncentralities a small SD gives.

Multiplicity: with a Holm or Bonferroni (or BH) correction over m generators, the first (smallest) p-value is
compared with alpha / m, so power is computed at alpha / m, a conservative bound for the other steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

METHOD = ("two-sided noncentral t (scipy), noncentrality effect / sqrt((1/n + n_test/n_train) SD^2), n - 1 df: "
          "the Nadeau-Bengio corrected t-test")


@dataclass(frozen=True)
class PowerPlan:
    """How many repeats of k-fold detect `effect` with the wanted power (None when no number of repeats does)."""

    effect: float
    sd: float
    folds: int
    test_train_ratio: float
    alpha: float
    """The per-test level used (alpha / m under a multiplicity correction)."""
    target_power: float
    repeats: int | None
    units: int | None
    """folds x repeats."""
    power: float
    """Power reached with `repeats` (or the most any number of repeats up to the limit reaches)."""


def corrected_t_power(effect: float, sd: float, n_units: int, test_train_ratio: float, alpha: float) -> float:
    """Power of the two-sided corrected resampled t-test with n_units unit differences of SD `sd`."""
    if n_units < 2:
        return 0.0
    if sd <= 0:
        return 1.0 if effect != 0 else alpha
    df = n_units - 1
    noncentrality = abs(effect) / math.sqrt((1.0 / n_units + test_train_ratio) * sd ** 2)
    critical = stats.t.ppf(1 - alpha / 2, df)
    upper = stats.nct.sf(critical, df, noncentrality)
    lower = stats.nct.cdf(-critical, df, noncentrality)  # negligible, and NaN in scipy for a large noncentrality
    return float(min(1.0, upper + (0.0 if math.isnan(lower) else lower)))


def per_test_alpha(alpha: float, correction: str, family: int) -> float:
    """The level the first-ranked test is held to under the study's correction over `family` comparisons."""
    return alpha if correction == "none" or family <= 1 else alpha / family


def required_repeats(effect: float, sd: float, folds: int, test_train_ratio: float, alpha: float,
                     power: float = 0.8, max_repeats: int = 200) -> PowerPlan:
    """The fewest repeats of `folds`-fold cross-validation whose corrected t-test reaches `power` for `effect`."""
    reached = 0.0
    for repeats in range(1, max_repeats + 1):
        reached = corrected_t_power(effect, sd, folds * repeats, test_train_ratio, alpha)
        if reached >= power:
            return PowerPlan(effect, sd, folds, test_train_ratio, alpha, power, repeats, folds * repeats, reached)
    return PowerPlan(effect, sd, folds, test_train_ratio, alpha, power, None, None, reached)


def required_units(effect: float, sd: float, test_train_ratio: float, alpha: float, power: float = 0.8,
                   max_units: int = 10_000) -> int | None:
    """The fewest unit differences (any n, not only multiples of k) reaching `power`; None if none up to max."""
    for n in range(2, max_units + 1):
        if corrected_t_power(effect, sd, n, test_train_ratio, alpha) >= power:
            return n
    return None
