"""Reads the study analysis needs (evaluations, split sizes, ratings, curves) and the one stored analysis it
writes (analyses, comparisons, headline, arm_summaries, correlations), which every report, `xaug results` and the
TUI read instead of computing statistics themselves."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from statistics import fmean

import sqlite_utils

from xaug.store.jobs import classifier_name, generator_name, study_jobs_of_kind
from xaug.store.quality import load_study_quality

COMPARISON_COLUMNS = ("generator", "classifier", "amount", "reference", "metric", "class_name", "n", "mean", "sd",
                      "ci_low", "ci_high", "statistic", "p_value", "p_adjusted", "test", "correction")
CORRELATION_COLUMNS = ("quality_metric", "utility_metric", "method", "n", "r", "ci_low", "ci_high", "p_value")
HEADLINE_COLUMNS = ("generator", "reference", "metric", "class_name", "n", "mean", "sd", "ci_low", "ci_high",
                    "statistic", "p_value", "p_adjusted", "test", "correction", "amounts")
ARM_SUMMARY_COLUMNS = ("classifier", "arm", "generator", "amount", "metric", "class_name", "n", "seeds", "mean", "sd",
                       "test_set")
ANALYSIS_COLUMNS = ("n_units", "repeats", "unit", "test", "correction", "alpha", "test_train_ratio", "amounts", "note")


def load_study_evaluations(db: sqlite_utils.Database, study: str, test_set: str = "test") -> list[dict]:
    """Every finished `evaluate` job of a study on one test set ('test': the folds' test splits, which the study's
    statistics use; 'external': dataset.external_test): classifier, repeat, fold, seed, arm, generator, amount,
    `results` (accuracy, balanced_accuracy, macro_f1, ...), per-class `f1`, per-class `class_metrics` (precision,
    recall, f1, support), `n_test` (sum of class supports) and `test_set`."""
    jobs = [(key, cfg) for key, cfg in study_jobs_of_kind(db, study, "evaluate")
            if cfg.get("test_set", "test") == test_set]
    results: dict[str, dict] = defaultdict(dict)
    class_f1: dict[str, dict] = defaultdict(dict)
    class_metrics: dict[str, dict] = defaultdict(dict)
    support: dict[str, int] = defaultdict(int)
    keys = [key for key, _ in jobs]
    for chunk in _chunks(keys, 500):
        marks = ",".join("?" * len(chunk))
        for key, name, value in db.execute(
                f"SELECT job_key, name, value FROM results WHERE job_key IN ({marks})", chunk):
            results[key][name] = value
        for key, class_name, precision, recall, f1, n in db.execute(
                f"SELECT job_key, class_name, precision, recall, f1, support FROM class_metrics"
                f" WHERE job_key IN ({marks}) ORDER BY rowid", chunk):
            class_f1[key][class_name] = f1
            class_metrics[key][class_name] = dict(precision=precision, recall=recall, f1=f1, support=n)
            support[key] += n
    return [
        dict(job_key=key, classifier=classifier_name(cfg.get("classifier")), repeat=int(cfg.get("repeat") or 0),
             fold=int(cfg.get("fold", 0)), seed=int(cfg.get("seed", 0)), arm=cfg.get("arm"),
             generator=generator_name(cfg.get("generator")), amount=int(cfg.get("amount") or 0),
             results=results.get(key, {}), f1=class_f1.get(key, {}), class_metrics=class_metrics.get(key, {}),
             n_test=support.get(key, 0), test_set=test_set)
        for key, cfg in jobs
    ]


def load_split_sizes(db: sqlite_utils.Database, study: str) -> dict[tuple[int, int], dict[str, int]]:
    """Images per (repeat, fold) and split ('train', 'val', 'test') recorded by the study's prepare_data job(s)."""
    keys = [key for key, _ in study_jobs_of_kind(db, study, "prepare_data", status=None)]
    sizes: dict[tuple[int, int], dict[str, int]] = defaultdict(dict)
    for chunk in _chunks(keys, 500):
        marks = ",".join("?" * len(chunk))
        for repeat, fold, split, count in db.execute(
                f"SELECT repeat, fold, split, COUNT(*) FROM split_members WHERE job_key IN ({marks})"
                " GROUP BY repeat, fold, split", chunk):
            sizes[(int(repeat), int(fold))][split] = int(count)
    return dict(sizes)


def load_study_ratings(db: sqlite_utils.Database, study: str) -> list[dict]:
    """Mean reader ratings per source (a generator name, or 'real'): quality (1-5), plausibility (1-3), n."""
    return list(db.query(
        "SELECT source, AVG(quality) AS quality, AVG(plausibility) AS plausibility, COUNT(*) AS n"
        " FROM ratings WHERE study = ? GROUP BY source ORDER BY source", [study]))


def load_study_training_curves(db: sqlite_utils.Database, study: str,
                               names: tuple[str, ...] = ("train_loss", "val_loss", "epoch"), *,
                               classifier: str | None = None, fold: int | None = None) -> list[dict]:
    """Loss curves of a study's train_classifier jobs (optionally of one classifier and fold: the arms of one
    classifier x fold): one dict per job with its arm keys and `curves` {name: [(step, value), ...]}."""
    jobs = [(key, cfg) for key, cfg in study_jobs_of_kind(db, study, "train_classifier", status=None)
            if (classifier is None or classifier_name(cfg.get("classifier")) == classifier)
            and (fold is None or cfg.get("fold") == fold)]
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
                            fold=cfg.get("fold"), repeat=int(cfg.get("repeat") or 0), seed=cfg.get("seed"),
                            arm=cfg.get("arm"),
                            generator=generator_name(cfg.get("generator")), amount=cfg.get("amount") or 0,
                            curves=dict(curves)))
    return out


def load_quality_summary(db: sqlite_utils.Database, study: str) -> list[dict]:
    """A study's image quality for display, the one place per-unit quality values are averaged: one row per
    generator x reference x class x metric x feature space with `value` (mean over its units, i.e. the folds x
    repeats its image_quality jobs ran on), `units`, `n_real`/`n_fake` (one number, or 'min-max' when units
    differ), `meaningful` (every unit's value was) and `note` (the units' distinct notes, '; '-joined).

    A plain mean of stored values, not an inferential statistic: the TUI and the report both show these rows."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in load_study_quality(db, study, reference=None):
        if row["generator"] is not None:
            key = (row["generator"], row["reference"], row["class_name"], row["metric"], row["features"])
            groups[key].append(row)
    out = []
    for (generator, reference, class_name, metric, features), rows in sorted(groups.items()):
        notes = list(dict.fromkeys(r["note"] for r in rows if r["note"]))
        out.append(dict(generator=generator, reference=reference, class_name=class_name, metric=metric,
                        features=features, value=fmean(r["value"] for r in rows), units=len(rows),
                        n_real=_span([r["n_real"] for r in rows]), n_fake=_span([r["n_fake"] for r in rows]),
                        meaningful=all(r["meaningful"] for r in rows), note="; ".join(notes) or None))
    return out


def _span(values: list[int]) -> int | str:
    """One number when every unit used the same N, else 'min-max'."""
    return values[0] if min(values) == max(values) else f"{min(values)}-{max(values)}"


def record_comparisons(db: sqlite_utils.Database, study: str, rows: Iterable[Mapping]) -> None:
    """Replace a study's comparison rows (one per generator x classifier x amount x reference x metric x class)."""
    _replace_rows(db, "comparisons", study, COMPARISON_COLUMNS, rows, {"class_name": ""})


def load_comparisons(db: sqlite_utils.Database, study: str, reference: str | None = None,
                     metric: str | None = None, *, per_class: bool | None = None) -> list[dict]:
    """A study's comparison rows, optionally for one reference ('baseline'/'duplicate') and metric; per_class True
    for per-class rows only, False for overall rows only."""
    where, params = ["study = ?"], [study]
    if per_class is not None:
        where.append("class_name != ''" if per_class else "class_name = ''")
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
    _replace_rows(db, "correlations", study, CORRELATION_COLUMNS, rows)


def load_correlations(db: sqlite_utils.Database, study: str) -> list[dict]:
    """A study's correlation rows."""
    return list(db["correlations"].rows_where("study = ?", [study], order_by="quality_metric, utility_metric, method"))


def _replace_rows(db: sqlite_utils.Database, table: str, study: str, columns: tuple[str, ...],
                  rows: Iterable[Mapping], defaults: Mapping | None = None) -> None:
    """Replace a study's rows of one analysis table in one transaction."""
    defaults = defaults or {}
    with db.conn:
        db.conn.execute(f"DELETE FROM {table} WHERE study = ?", (study,))
        db.conn.executemany(
            f"INSERT INTO {table} (study, {', '.join(columns)}) VALUES (?, {', '.join('?' * len(columns))})",
            [(study, *[_plain(r.get(c, defaults.get(c))) for c in columns]) for r in rows],
        )


def record_analysis(db: sqlite_utils.Database, study: str, info: Mapping, headline: Iterable[Mapping],
                    arm_summaries: Iterable[Mapping]) -> None:
    """Replace a study's stored analysis summary (`analyses`: unit, n, settings, note), its `headline` rows and
    its `arm_summaries` rows."""
    _replace_rows(db, "analyses", study, ANALYSIS_COLUMNS, [info])
    _replace_rows(db, "headline", study, HEADLINE_COLUMNS, headline, {"class_name": "", "amounts": ""})
    _replace_rows(db, "arm_summaries", study, ARM_SUMMARY_COLUMNS, arm_summaries,
                  {"generator": "", "amount": 0, "class_name": "", "test_set": "test"})


def load_analysis(db: sqlite_utils.Database, study: str) -> dict | None:
    """The stored analysis summary of a study (n_units, repeats, unit, test, correction, alpha, test_train_ratio,
    amounts, note), or None before its analyse job ran."""
    rows = list(db["analyses"].rows_where("study = ?", [study]))
    return rows[0] if rows else None


def load_headline(db: sqlite_utils.Database, study: str, *, reference: str | None = None,
                  metric: str | None = None, per_class: bool | None = None) -> list[dict]:
    """A study's headline rows (generator effects), optionally for one reference and metric; per_class True for
    per-class F1 rows only, False for overall metrics only."""
    where, params = ["study = ?"], [study]
    for column, value in (("reference", reference), ("metric", metric)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if per_class is not None:
        where.append("class_name != ''" if per_class else "class_name = ''")
    return list(db["headline"].rows_where(" AND ".join(where), params,
                                           order_by="reference, metric, class_name, generator"))


def load_arm_summaries(db: sqlite_utils.Database, study: str, *, per_class: bool | None = None,
                       test_set: str = "test") -> list[dict]:
    """A study's per classifier x arm x metric summaries over units (overall metrics: class_name ''), on one test
    set ('test': the folds' test splits; 'external': dataset.external_test)."""
    where = "study = ? AND test_set = ?" + ("" if per_class is None else " AND class_name != ''" if per_class
                                            else " AND class_name = ''")
    return list(db["arm_summaries"].rows_where(where, [study, test_set], order_by="rowid"))


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
