"""Image-quality rows of a generator's samples: one value per (job, class, metric, feature space), with its N."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import sqlite_utils


def record_quality(db: sqlite_utils.Database, job_key: str, rows: Iterable[Mapping]) -> None:
    """Record quality values (class_name '' = all classes) with n_real and n_fake; re-recording replaces them."""
    with db.conn:
        db.conn.executemany(
            "INSERT OR REPLACE INTO quality (job_key, class_name, metric, features, value, std, n_real, n_fake)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (job_key, r["class_name"], r["metric"], r["features"], float(r["value"]),
                 None if r.get("std") is None else float(r["std"]), int(r["n_real"]), int(r["n_fake"]))
                for r in rows
            ],
        )


def load_quality(db: sqlite_utils.Database, job_key: str) -> list[dict]:
    """A job's quality rows ordered by feature space, class and metric."""
    return list(db["quality"].rows_where("job_key = ?", [job_key], order_by="features, class_name, metric"))


def load_study_quality(db: sqlite_utils.Database, study: str) -> list[dict]:
    """Quality rows of a study's image_quality jobs, each with the job's `generator` name and `fold`."""
    rows = db.execute(
        "SELECT q.job_key, q.class_name, q.metric, q.features, q.value, q.std, q.n_real, q.n_fake, j.config_json"
        " FROM quality q JOIN jobs j ON j.key = q.job_key JOIN study_jobs s ON s.job_key = q.job_key"
        " WHERE s.study = ? AND j.kind = 'image_quality' ORDER BY q.job_key, q.features, q.class_name, q.metric",
        (study,),
    ).fetchall()
    out = []
    for job_key, class_name, metric, features, value, std, n_real, n_fake, config_json in rows:
        config = json.loads(config_json)
        out.append(dict(job_key=job_key, generator=_generator_name(config.get("generator")),
                        repeat=int(config.get("repeat") or 0), fold=config.get("fold"), class_name=class_name,
                        metric=metric, features=features,
                        value=value, std=std, n_real=n_real, n_fake=n_fake))
    return out


def _generator_name(generator) -> str | None:
    """A job config's generator: a GeneratorSpec dump or already a name."""
    if isinstance(generator, Mapping):
        return generator.get("name")
    return generator
