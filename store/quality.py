"""Image-quality rows of a generator's samples: one value per (job, reference, class, metric, feature space), with
its N.

`reference` is the set of real images a value was computed against: 'train' (the fold's training split), 'heldout'
(its validation split, never the test split), or '' for values of the synthetic images alone (MS-SSIM among
synthetic pairs). Class '' is the macro-average of the meaningful per-class values; `meaningful` = 0 marks a value
whose class had too few images, and `note` says why (or how an overall value was formed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import sqlite_utils

from xaug.store.jobs import generator_name


REFERENCES = ("train", "heldout")


def record_quality(db: sqlite_utils.Database, job_key: str, rows: Iterable[Mapping]) -> None:
    """Record a job's quality values (class_name '' = macro-average over classes) with n_real, n_fake, reference,
    meaningful and note; the job's earlier rows are replaced."""
    with db.conn:
        db.conn.execute("DELETE FROM quality WHERE job_key = ?", (job_key,))
        db.conn.executemany(
            "INSERT INTO quality (job_key, reference, class_name, metric, features, value, std, n_real, n_fake,"
            " meaningful, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (job_key, r.get("reference", "train"), r["class_name"], r["metric"], r["features"],
                 float(r["value"]), None if r.get("std") is None else float(r["std"]), int(r["n_real"]),
                 int(r["n_fake"]), int(bool(r.get("meaningful", True))), r.get("note"))
                for r in rows
            ],
        )


def load_quality(db: sqlite_utils.Database, job_key: str) -> list[dict]:
    """A job's quality rows ordered by reference, feature space, class and metric."""
    return list(db["quality"].rows_where("job_key = ?", [job_key],
                                         order_by="reference, features, class_name, metric"))


def load_study_quality(db: sqlite_utils.Database, study: str, reference: str | None = "train") -> list[dict]:
    """Quality rows of a study's image_quality jobs, each with the job's `generator` name and `fold`.

    `reference` 'train' or 'heldout' keeps the values against that reference plus those that need none (MS-SSIM of
    synthetic pairs); None returns every row (each dict carries its `reference`)."""
    where, params = "s.study = ? AND j.kind = 'image_quality'", [study]
    if reference is not None:
        where += " AND q.reference IN (?, '')"
        params.append(reference)
    rows = db.execute(
        "SELECT q.job_key, q.reference, q.class_name, q.metric, q.features, q.value, q.std, q.n_real, q.n_fake,"
        " q.meaningful, q.note, j.config_json"
        " FROM quality q JOIN jobs j ON j.key = q.job_key JOIN study_jobs s ON s.job_key = q.job_key"
        f" WHERE {where} ORDER BY q.job_key, q.reference, q.features, q.class_name, q.metric",
        params,
    ).fetchall()
    out = []
    for (job_key, ref, class_name, metric, features, value, std, n_real, n_fake, meaningful, note,
         config_json) in rows:
        config = json.loads(config_json)
        out.append(dict(job_key=job_key, generator=generator_name(config.get("generator")),
                        repeat=int(config.get("repeat") or 0), fold=config.get("fold"), reference=ref,
                        class_name=class_name, metric=metric, features=features, value=value, std=std,
                        n_real=n_real, n_fake=n_fake, meaningful=bool(meaningful), note=note))
    return out

