"""Does better image quality mean more useful synthetic data? Spearman and Pearson correlations of quality (FID,
KID, precision/recall, density/coverage, MS-SSIM, reader scores) with utility (mean change in accuracy), with a
Fisher-z CI and n, because with five generators n is tiny and the CI is the honest answer.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from scipy import stats

METHODS = ("spearman", "pearson")


def correlation(x, y, method: str = "spearman", alpha: float = 0.05) -> dict:
    """r, two-sided p, (1 - alpha) CI and n of paired values (NaNs dropped).

    CI via Fisher's z: SE = 1/sqrt(n - 3) for Pearson and sqrt(1.06/(n - 3)) for Spearman (Fieller et al. 1957);
    None when n < 4. r and p are None when n < 3 or a variable is constant.
    """
    if method not in METHODS:
        raise ValueError(f"unknown correlation method '{method}'; known: {', '.join(METHODS)}")
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = int(a.size)
    out = dict(method=method, n=n, r=None, ci_low=None, ci_high=None, p_value=None)
    if n < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return out
    result = stats.spearmanr(a, b) if method == "spearman" else stats.pearsonr(a, b)
    r = float(result.statistic)
    out.update(r=r, p_value=float(result.pvalue))
    if n >= 4:
        se = math.sqrt((1.06 if method == "spearman" else 1.0) / (n - 3))
        z = math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12))
        crit = stats.norm.ppf(1 - alpha / 2)
        out.update(ci_low=math.tanh(z - crit * se), ci_high=math.tanh(z + crit * se))
    return out


def quality_by_generator(quality_rows: list[dict], *, per_fold: bool = False) -> dict[str, dict]:
    """Overall (class '') quality per metric name 'metric/features' -> {generator (or (generator, (repeat,
    fold)), the replication unit): mean over units}."""
    values: dict = defaultdict(lambda: defaultdict(list))
    for row in quality_rows:
        if row["class_name"] != "" or row["generator"] is None:
            continue
        unit = ((row["generator"], (int(row.get("repeat") or 0), int(row["fold"]))) if per_fold
                else row["generator"])
        values[f"{row['metric']}/{row['features']}"][unit].append(row["value"])
    return {name: {unit: float(np.mean(v)) for unit, v in units.items()} for name, units in values.items()}


def ratings_by_generator(ratings: list[dict]) -> dict[str, dict]:
    """Mean reader scores per generator: {'reader_quality': {gen: mean}, 'reader_plausibility': {...}}."""
    out: dict = {"reader_quality": {}, "reader_plausibility": {}}
    for row in ratings:
        if row["source"] == "real":
            continue
        if row.get("quality") is not None:
            out["reader_quality"][row["source"]] = float(row["quality"])
        if row.get("plausibility") is not None:
            out["reader_plausibility"][row["source"]] = float(row["plausibility"])
    return {name: units for name, units in out.items() if units}


def quality_utility_correlations(quality: dict[str, dict], utility: dict, utility_metric: str,
                                 alpha: float = 0.05) -> list[dict]:
    """Correlation rows (see the `correlations` table) of each quality metric with one utility mapping
    {unit: value}, over the units both know (generators, or generator x fold)."""
    rows = []
    for quality_metric, by_unit in sorted(quality.items()):
        units = sorted(set(by_unit) & set(utility), key=str)
        x = [by_unit[u] for u in units]
        y = [utility[u] for u in units]
        for method in METHODS:
            rows.append(dict(quality_metric=quality_metric, utility_metric=utility_metric,
                             **correlation(x, y, method, alpha)))
    return rows
