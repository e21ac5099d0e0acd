"""The reader study: one rating per rater per image (quality 1-5, plausibility 1-3, real/synthetic guess)."""

from __future__ import annotations

import sqlite_utils

from xaug.store.errors import StoreError
from xaug.store.db import now

REAL_SOURCE = "real"
"""The `source` of a real image; a synthetic image's source is its generator's name."""


def record_rating(
    db: sqlite_utils.Database,
    study: str,
    rater: str,
    image_path: str,
    source: str,
    class_name: str,
    *,
    quality: int | None = None,
    plausibility: int | None = None,
    guess: str | None = None,
) -> None:
    """Record (or update) a rater's rating of one image; values left as None keep what was recorded before."""
    if not rater.strip():
        raise StoreError("a rating needs a rater name; enter one when the reader study starts")
    if quality is not None and not 1 <= int(quality) <= 5:
        raise StoreError(f"quality must be 1-5, got {quality}")
    if plausibility is not None and not 1 <= int(plausibility) <= 3:
        raise StoreError(f"plausibility must be 1-3, got {plausibility}")
    if guess is not None and guess not in ("real", "synthetic"):
        raise StoreError(f"guess must be 'real' or 'synthetic', got {guess!r}")
    with db.conn:
        db.conn.execute(
            "INSERT INTO ratings (study, rater, image_path, source, class_name, quality, plausibility, guess, rated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(study, rater, image_path) DO UPDATE SET"
            " quality = coalesce(excluded.quality, quality),"
            " plausibility = coalesce(excluded.plausibility, plausibility),"
            " guess = coalesce(excluded.guess, guess), rated_at = excluded.rated_at",
            (study, rater.strip(), image_path, source, class_name, quality, plausibility, guess, now()),
        )


def load_ratings(db: sqlite_utils.Database, study: str, rater: str | None = None) -> list[dict]:
    """A study's ratings (optionally one rater's), in the order they were first given."""
    where, params = "study = ?", [study]
    if rater is not None:
        where, params = where + " AND rater = ?", params + [rater]
    return list(db["ratings"].rows_where(where, params, order_by="id"))


def rated_images(db: sqlite_utils.Database, study: str, rater: str) -> set[str]:
    """Images a rater has fully rated (quality, plausibility and guess all given)."""
    rows = db.execute(
        "SELECT image_path FROM ratings WHERE study = ? AND rater = ? AND quality IS NOT NULL"
        " AND plausibility IS NOT NULL AND guess IS NOT NULL", (study, rater)).fetchall()
    return {row[0] for row in rows}


def rating_summary(db: sqlite_utils.Database, study: str) -> list[dict]:
    """Per source (generator or 'real'): raters, images rated, mean quality, mean plausibility, share guessed real."""
    rows = db.execute(
        "SELECT source, count(DISTINCT rater), count(*), avg(quality), avg(plausibility),"
        " avg(CASE guess WHEN 'real' THEN 1.0 WHEN 'synthetic' THEN 0.0 END) FROM ratings WHERE study = ?"
        " GROUP BY source ORDER BY source = 'real' DESC, source", (study,)).fetchall()
    return [dict(source=r[0], raters=r[1], n=r[2], quality=r[3], plausibility=r[4], guessed_real=r[5]) for r in rows]
