"""Files under the artifact folder: building their paths safely, and indexing what a job wrote (checkpoints,
sample PNGs, grids, logs, figures).

Paths under the artifact folder are often made of data (class names from folder names or CSV labels, unit names,
paths read back from the store). `artifact_path` is the one way to build them: a part that would lead out of its
root folder ('..', an absolute path, a symlink pointing elsewhere) is refused, so no name can make a job write or
delete anything outside the folder it was given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

import sqlite_utils

from xaug.store.errors import DataError
from xaug.store.db import now


def artifact_path(root: str | Path, *parts: str | Path) -> Path:
    """`root / part / ...`, or DataError when a part is empty, absolute, holds '..' or a NUL, or the result
    (symlinks followed) lies outside `root`. Parts may hold several segments ('samples/viral/00001.png')."""
    root = Path(root)
    for part in parts:
        text = str(part)
        segments = PurePosixPath(text.replace("\\", "/")).parts
        if not text or "\x00" in text or PurePosixPath(text).is_absolute() or Path(text).is_absolute() \
                or ".." in segments:
            raise DataError(f"refusing the path segment {text!r} below {root}: a name from data (a class, a unit or "
                            "a stored path) must stay inside its folder; use names of letters, digits, '_', '.' and "
                            "'-' that start with a letter or digit")
    path = root.joinpath(*(str(part) for part in parts))
    if not path.resolve().is_relative_to(root.resolve()):
        raise DataError(f"refusing {path}: it resolves to {path.resolve()}, outside {root} (a symlink?)")
    return path


def record_artifact(
    db: sqlite_utils.Database,
    job_key: str,
    kind: str,
    path: str,
    *,
    class_name: str | None = None,
    seed: int | None = None,
    step: int | None = None,
    meta: Mapping | None = None,
) -> None:
    """Index one file (path relative to the artifact folder); recording the same path again replaces it."""
    record_artifacts(db, [dict(job_key=job_key, kind=kind, path=path, class_name=class_name, seed=seed,
                               step=step, meta=meta)])


def record_artifacts(db: sqlite_utils.Database, rows: Iterable[Mapping]) -> None:
    """Index many files in one transaction; each row has job_key, kind, path and optional class_name/seed/step/meta."""
    stamp = now()
    with db.conn:
        db.conn.executemany(
            "INSERT OR REPLACE INTO artifacts (job_key, kind, path, class_name, seed, step, meta_json, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (r["job_key"], r["kind"], str(r["path"]), r.get("class_name"), r.get("seed"), r.get("step"),
                 None if r.get("meta") is None else json.dumps(r["meta"]), stamp)
                for r in rows
            ],
        )


def load_artifacts(
    db: sqlite_utils.Database, job_key: str, kind: str | None = None, class_name: str | None = None
) -> list[dict]:
    """A job's indexed files, optionally of one kind and class, ordered by step then path."""
    where, params = ["job_key = ?"], [job_key]
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    if class_name is not None:
        where.append("class_name = ?")
        params.append(class_name)
    rows = list(db["artifacts"].rows_where(" AND ".join(where), params, order_by="step, path"))
    for row in rows:
        row["meta"] = json.loads(row.pop("meta_json")) if row.get("meta_json") else None
    return rows


def delete_artifacts(db: sqlite_utils.Database, job_key: str, kind: str) -> None:
    """Forget a job's files of one kind (e.g. samples, before a re-run writes them again)."""
    with db.conn:
        db.conn.execute("DELETE FROM artifacts WHERE job_key = ? AND kind = ?", (job_key, kind))


def load_study_samples(db: sqlite_utils.Database, study: str) -> dict[str, dict[str, list[str]]]:
    """A study's synthetic samples as generator -> class -> [paths relative to the artifact folder]."""
    from xaug.store.jobs import generator_name, study_jobs_of_kind

    samples: dict[str, dict[str, list[str]]] = {}
    for key, config in study_jobs_of_kind(db, study, "sample", status=None):
        name = generator_name(config.get("generator")) or key[:8]
        for row in load_artifacts(db, key, kind="sample"):
            samples.setdefault(name, {}).setdefault(row["class_name"] or "", []).append(row["path"])
    for per_class in samples.values():
        for paths in per_class.values():
            paths.sort()
    return samples
