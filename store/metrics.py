"""Recording and reading a job's numbers: step-wise curves, final results, per-class metrics, confusion matrix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlite_utils

from xaug.store.db import now


def record_metric(db: sqlite_utils.Database, job_key: str, name: str, step: int, value: float) -> None:
    """Record one point of a curve; re-recording the same (job, name, step) replaces it, never duplicates."""
    record_metrics(db, job_key, step, {name: value})


def record_metrics(db: sqlite_utils.Database, job_key: str, step: int, values: Mapping[str, float]) -> None:
    """Record several curves at one step in one transaction."""
    stamp = now()
    with db.conn:
        db.conn.executemany(
            "INSERT OR REPLACE INTO metrics (job_key, name, step, value, recorded_at) VALUES (?, ?, ?, ?, ?)",
            [(job_key, name, int(step), float(value), stamp) for name, value in values.items()],
        )


def load_metrics(db: sqlite_utils.Database, job_key: str, name: str | None = None) -> list[dict]:
    """All curve points of a job (optionally one curve), ordered by name then step."""
    where, params = "job_key = ?", [job_key]
    if name is not None:
        where, params = where + " AND name = ?", params + [name]
    return list(db["metrics"].rows_where(where, params, order_by="name, step"))


def delete_metrics_after(db: sqlite_utils.Database, job_key: str, step: int) -> None:
    """Drop curve points beyond `step`: a job resuming from a checkpoint at `step` will record them again."""
    with db.conn:
        db.conn.execute("DELETE FROM metrics WHERE job_key = ? AND step > ?", (job_key, int(step)))


def record_results(db: sqlite_utils.Database, job_key: str, values: Mapping[str, float]) -> None:
    """Record a job's final scalar results (accuracy, balanced_accuracy, macro_f1, ...), replacing earlier ones."""
    with db.conn:
        db.conn.executemany(
            "INSERT OR REPLACE INTO results (job_key, name, value) VALUES (?, ?, ?)",
            [(job_key, name, float(value)) for name, value in values.items()],
        )


def load_results(db: sqlite_utils.Database, job_key: str) -> dict[str, float]:
    """A job's final scalar results as a name -> value mapping."""
    return {row["name"]: row["value"] for row in db["results"].rows_where("job_key = ?", [job_key])}


def record_class_metrics(db: sqlite_utils.Database, job_key: str, rows: Iterable[Mapping]) -> None:
    """Record per-class precision, recall, F1, AUROC (may be None) and support for a job."""
    with db.conn:
        db.conn.executemany(
            "INSERT OR REPLACE INTO class_metrics (job_key, class_name, precision, recall, f1, auroc, support)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (job_key, r["class_name"], float(r["precision"]), float(r["recall"]), float(r["f1"]),
                 None if r.get("auroc") is None else float(r["auroc"]), int(r["support"]))
                for r in rows
            ],
        )


def load_class_metrics(db: sqlite_utils.Database, job_key: str) -> list[dict]:
    """Per-class rows of a job, in the order they were recorded."""
    return list(db["class_metrics"].rows_where("job_key = ?", [job_key], order_by="rowid"))


def record_confusion(db: sqlite_utils.Database, job_key: str, classes: list[str], matrix) -> None:
    """Record a confusion matrix given as rows = true class, columns = predicted class."""
    rows = [
        (job_key, true_name, pred_name, int(matrix[i][j]))
        for i, true_name in enumerate(classes)
        for j, pred_name in enumerate(classes)
    ]
    with db.conn:
        db.conn.executemany(
            "INSERT OR REPLACE INTO confusion (job_key, true_class, pred_class, count) VALUES (?, ?, ?, ?)", rows
        )


def load_confusion(db: sqlite_utils.Database, job_key: str, classes: list[str]) -> list[list[int]]:
    """A job's confusion matrix as a list of rows (true class) of counts per predicted class."""
    index = {name: i for i, name in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for row in db["confusion"].rows_where("job_key = ?", [job_key]):
        matrix[index[row["true_class"]]][index[row["pred_class"]]] = row["count"]
    return matrix
