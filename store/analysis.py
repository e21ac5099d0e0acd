"""Reads the study analysis needs (evaluations, split sizes, ratings, curves) and the comparisons/correlations it
writes."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping

import sqlite_utils

COMPARISON_COLUMNS = ("generator", "classifier", "amount", "reference", "metric", "class_name", "n", "mean", "sd",
                      "ci_low", "ci_high", "statistic", "p_value", "p_adjusted", "test", "correction")
CORRELATION_COLUMNS = ("quality_metric", "utility_metric", "method", "n", "r", "ci_low", "ci_high", "p_value")


def classifier_name(classifier) -> str | None:
    """A job config's classifier: a ClassifierSpec dump (name, else model) or already a name."""
    if isinstance(classifier, Mapping):
        return classifier.get("name") or classifier.get("model")
    return classifier


def generator_name(generator) -> str | None:
    """A job config's generator: a GeneratorSpec dump (its name), a name, or None for real-only arms."""
    if isinstance(generator, Mapping):
        return generator.get("name")
    return generator


def _study_jobs_of_kind(db: sqlite_utils.Database, study: str, kind: str, status: str | None = "done") -> list[tuple]:
    """(key, config dict) of a study's jobs of one kind, optionally only with one status."""
    sql = ("SELECT j.key, j.config_json FROM jobs j JOIN study_jobs s ON s.job_key = j.key"
           " WHERE s.study = ? AND j.kind = ?")
    params: list = [study, kind]
    if status is not None:
        sql += " AND j.status = ?"
        params.append(status)
    return [(key, json.loads(cfg)) for key, cfg in db.execute(sql + " ORDER BY j.key", params).fetchall()]


def load_study_evaluations(db: sqlite_utils.Database, study: str) -> list[dict]:
    """Every finished `evaluate` job of a study: classifier, fold, seed, arm, generator, amount, `results`
    (accuracy, balanced_accuracy, macro_f1, ...), per-class `f1`, and `n_test` (sum of class supports)."""
    jobs = _study_jobs_of_kind(db, study, "evaluate")
    results: dict[str, dict] = defaultdict(dict)
    class_f1: dict[str, dict] = defaultdict(dict)
    support: dict[str, int] = defaultdict(int)
    keys = [key for key, _ in jobs]
    for chunk in _chunks(keys, 500):
        marks = ",".join("?" * len(chunk))
        for key, name, value in db.execute(
                f"SELECT job_key, name, value FROM results WHERE job_key IN ({marks})", chunk):
            results[key][name] = value
        for key, class_name, f1, n in db.execute(
                f"SELECT job_key, class_name, f1, support FROM class_metrics WHERE job_key IN ({marks})"
                " ORDER BY rowid", chunk):
            class_f1[key][class_name] = f1
            support[key] += n
    return [
        dict(job_key=key, classifier=classifier_name(cfg.get("classifier")), fold=int(cfg.get("fold", 0)),
             seed=int(cfg.get("seed", 0)), arm=cfg.get("arm"), generator=generator_name(cfg.get("generator")),
             amount=int(cfg.get("amount") or 0), results=results.get(key, {}), f1=class_f1.get(key, {}),
             n_test=support.get(key, 0))
        for key, cfg in jobs
    ]


def load_split_sizes(db: sqlite_utils.Database, study: str) -> dict[int, dict[str, int]]:
    """Images per fold and split ('train', 'val', 'test') recorded by the study's prepare_data job(s)."""
    keys = [key for key, _ in _study_jobs_of_kind(db, study, "prepare_data", status=None)]
    sizes: dict[int, dict[str, int]] = defaultdict(dict)
    for chunk in _chunks(keys, 500):
        marks = ",".join("?" * len(chunk))
        for fold, split, count in db.execute(
                f"SELECT fold, split, COUNT(*) FROM split_members WHERE job_key IN ({marks}) GROUP BY fold, split",
                chunk):
            sizes[int(fold)][split] = int(count)
    return dict(sizes)


def load_study_ratings(db: sqlite_utils.Database, study: str) -> list[dict]:
    """Mean reader ratings per source (a generator name, or 'real'): quality (1-5), plausibility (1-3), n."""
    return list(db.query(
        "SELECT source, AVG(quality) AS quality, AVG(plausibility) AS plausibility, COUNT(*) AS n"
        " FROM ratings WHERE study = ? GROUP BY source ORDER BY source", [study]))


def load_study_training_curves(db: sqlite_utils.Database, study: str,
                               names: tuple[str, ...] = ("train_loss", "val_loss", "epoch")) -> list[dict]:
    """Loss curves of a study's train_classifier jobs: one dict per job with its arm keys and `curves`
    {name: [(step, value), ...]}."""
    jobs = _study_jobs_of_kind(db, study, "train_classifier", status=None)
    out = []
    for key, cfg in jobs:
        curves: dict[str, list] = defaultdict(list)
        marks = ",".join("?" * len(names))
        for name, step, value in db.execute(
                f"SELECT name, step, value FROM metrics WHERE job_key = ? AND name IN ({marks}) ORDER BY name, step",
                [key, *names]):
            curves[name].append((step, value))
        if curves:
            out.append(dict(job_key=key, classifier=classifier_name(cfg.get("classifier")),
                            fold=cfg.get("fold"), seed=cfg.get("seed"), arm=cfg.get("arm"),
                            generator=generator_name(cfg.get("generator")), amount=cfg.get("amount") or 0,
                            curves=dict(curves)))
    return out


def record_comparisons(db: sqlite_utils.Database, study: str, rows: Iterable[Mapping]) -> None:
    """Replace a study's comparison rows (one per generator x classifier x amount x reference x metric x class)."""
    with db.conn:
        db.conn.execute("DELETE FROM comparisons WHERE study = ?", (study,))
        db.conn.executemany(
            f"INSERT INTO comparisons (study, {', '.join(COMPARISON_COLUMNS)})"
            f" VALUES (?, {', '.join('?' * len(COMPARISON_COLUMNS))})",
            [(study, *[_plain(r.get(c, "" if c == "class_name" else None)) for c in COMPARISON_COLUMNS])
             for r in rows],
        )


def load_comparisons(db: sqlite_utils.Database, study: str, reference: str | None = None,
                     metric: str | None = None) -> list[dict]:
    """A study's comparison rows, optionally for one reference ('baseline'/'duplicate') and metric."""
    where, params = ["study = ?"], [study]
    if reference is not None:
        where.append("reference = ?")
        params.append(reference)
    if metric is not None:
        where.append("metric = ?")
        params.append(metric)
    return list(db["comparisons"].rows_where(" AND ".join(where), params,
                                              order_by="reference, metric, class_name, generator, classifier, amount"))


def record_correlations(db: sqlite_utils.Database, study: str, rows: Iterable[Mapping]) -> None:
    """Replace a study's quality-vs-utility correlation rows."""
    with db.conn:
        db.conn.execute("DELETE FROM correlations WHERE study = ?", (study,))
        db.conn.executemany(
            f"INSERT INTO correlations (study, {', '.join(CORRELATION_COLUMNS)})"
            f" VALUES (?, {', '.join('?' * len(CORRELATION_COLUMNS))})",
            [(study, *[_plain(r.get(c)) for c in CORRELATION_COLUMNS]) for r in rows],
        )


def load_correlations(db: sqlite_utils.Database, study: str) -> list[dict]:
    """A study's correlation rows."""
    return list(db["correlations"].rows_where("study = ?", [study], order_by="quality_metric, utility_metric, method"))


def _plain(value):
    """numpy scalars -> Python; NaN -> NULL."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]
