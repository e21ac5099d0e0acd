"""Reading a study's classifier results: per-class precision/recall/F1 and overall scores of its evaluate jobs,
and their mean and SD over folds x seeds per classifier and arm (the table of `xaug results`)."""

from __future__ import annotations

import math
from collections import defaultdict

import sqlite_utils

from xaug.store.analysis import load_study_evaluations


def load_study_class_metrics(db: sqlite_utils.Database, study: str) -> list[dict]:
    """Per-class rows (class_name, precision, recall, f1, support) of every done evaluate job, with its arm."""
    evals = {e["job_key"]: e for e in load_study_evaluations(db, study)}
    keys = list(evals)
    rows = []
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in db.query(f"SELECT * FROM class_metrics WHERE job_key IN ({marks}) ORDER BY rowid", chunk):
            rows.append({**evals[row["job_key"]], **dict(row)})
    return rows


def load_study_scores(db: sqlite_utils.Database, study: str) -> list[dict]:
    """Overall results (accuracy, balanced_accuracy, macro_f1, auroc...) of every done evaluate job, with its arm."""
    return [{**e, "name": name, "value": value}
            for e in load_study_evaluations(db, study) for name, value in e["results"].items()]


def arm_label(row: dict) -> str:
    """'baseline', 'ddpm +100' or 'duplicate +100'."""
    if row["arm"] == "synthetic":
        return f"{row['generator']} +{row['amount']}"
    if row["arm"] == "duplicate":
        return f"duplicate +{row['amount']}"
    return str(row["arm"])


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample SD (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, sd


def class_metric_table(db: sqlite_utils.Database, study: str) -> list[dict]:
    """Per classifier, arm and class: n runs and mean/SD of precision, recall and F1 over folds x seeds."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    order: dict[tuple, int] = {}
    for row in load_study_class_metrics(db, study):
        group = (row["classifier"], _arm_sort(row), arm_label(row), row["class_name"])
        order.setdefault(group, len(order))
        groups[group].append(row)
    table = []
    for group in sorted(groups, key=lambda g: (g[0], g[1], order[g])):
        rows = groups[group]
        entry = {"classifier": group[0], "arm": group[2], "class_name": group[3], "n": len(rows),
                 "support": sum(r["support"] for r in rows)}
        for metric in ("precision", "recall", "f1"):
            entry[f"{metric}_mean"], entry[f"{metric}_sd"] = mean_sd([r[metric] for r in rows])
        table.append(entry)
    return table


def score_table(db: sqlite_utils.Database, study: str) -> list[dict]:
    """Per classifier and arm: n runs and mean/SD of each overall score over folds x seeds."""
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in load_study_scores(db, study):
        groups[(row["classifier"], _arm_sort(row), arm_label(row))][row["name"]].append(row["value"])
    table = []
    for group in sorted(groups):
        entry = {"classifier": group[0], "arm": group[2]}
        for name, values in sorted(groups[group].items()):
            entry["n"] = max(entry.get("n", 0), len(values))
            entry[f"{name}_mean"], entry[f"{name}_sd"] = mean_sd(values)
        table.append(entry)
    return table


def _arm_sort(row: dict) -> tuple:
    rank = {"baseline": 0, "synthetic": 1, "duplicate": 2}.get(row["arm"], 3)
    return (rank, row["generator"] or "", row["amount"] or 0)
