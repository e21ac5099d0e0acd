"""A study's classifier results per classifier and arm, read from the stored analysis (`arm_summaries`, written
by the analyse job): mean and SD over replication units, seeds averaged within a unit (the tables of
`xaug results` and of the summary after `xaug run`). Nothing here computes a statistic."""

from __future__ import annotations

from collections import defaultdict

import sqlite_utils

from xaug.store.analysis import load_analysis, load_arm_summaries

CLASS_METRICS = ("precision", "recall", "f1")


def arm_label(row: dict) -> str:
    """'baseline', 'ddpm +100' or 'duplicate +100'."""
    if row["arm"] == "synthetic":
        return f"{row['generator']} +{row['amount']}"
    if row["arm"] == "duplicate":
        return f"duplicate +{row['amount']}"
    return str(row["arm"])


def results_unit(db: sqlite_utils.Database, study: str) -> str:
    """'n = 3 units; unit = fold (seeds averaged within a fold)', or why there is nothing yet."""
    info = load_analysis(db, study)
    return info["unit"] if info else "no stored analysis yet (the study's analyse job has not run)"


def class_metric_table(db: sqlite_utils.Database, study: str, test_set: str = "test") -> list[dict]:
    """Per classifier, arm and class: n units, seeds per unit, and mean/SD over units of precision, recall, F1 on
    one test set ('test': the folds' test splits; 'external': dataset.external_test)."""
    return _pivot(load_arm_summaries(db, study, per_class=True, test_set=test_set), with_class=True)


def score_table(db: sqlite_utils.Database, study: str, test_set: str = "test") -> list[dict]:
    """Per classifier and arm: n units, seeds per unit, and mean/SD over units of each overall score on one test
    set."""
    return _pivot(load_arm_summaries(db, study, per_class=False, test_set=test_set), with_class=False)


def _pivot(rows: list[dict], with_class: bool) -> list[dict]:
    """arm_summaries rows (one per metric) -> one entry per classifier x arm (x class) with `<metric>_mean/_sd`."""
    entries: dict[tuple, dict] = {}
    order: dict[tuple, int] = defaultdict(int)
    for row in rows:  # stored in the order the analysis saw them: classes in the study's order
        group = (row["classifier"], _arm_sort(row), arm_label(row), row["class_name"] if with_class else "")
        order.setdefault(group, len(order))
        entry = entries.setdefault(group, {"classifier": row["classifier"], "arm": arm_label(row), "n": row["n"],
                                           "seeds": row["seeds"], **({"class_name": row["class_name"]}
                                                                     if with_class else {})})
        entry["n"] = max(entry["n"], row["n"])
        entry[f"{row['metric']}_mean"] = row["mean"]
        entry[f"{row['metric']}_sd"] = row["sd"] if row["sd"] is not None else 0.0
    return [entries[g] for g in sorted(entries, key=lambda g: (g[0], g[1], order[g]))]


def _arm_sort(row: dict) -> tuple:
    rank = {"baseline": 0, "synthetic": 1, "duplicate": 2}.get(row["arm"], 3)
    return (rank, row["generator"] or "", row["amount"] or 0)
