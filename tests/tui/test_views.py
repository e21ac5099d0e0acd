"""The TUI's store functions: queue listing, liveness, study queries and the reader-study ratings."""

from __future__ import annotations

import sqlite3

import pytest

from xaug.store.errors import StoreError
from xaug.store import open_store, views
from xaug.store.ratings import load_ratings, rated_images, rating_summary, record_rating


def test_list_queue_filters_and_counts(fake_store):
    db = open_store(fake_store)
    assert len(views.list_queue(db)) == 12
    failed = views.list_queue(db, status="failed")
    assert [r["key"] for r in failed] == ["f" * 64] and failed[0]["studies"] == "demo"
    assert views.list_queue(db, study="other") == []
    assert views.queue_counts(db) == {"queued": 1, "running": 1, "done": 8, "failed": 1, "cancelled": 1, "blocked": 0}


def test_engine_liveness_and_reader(fake_store, tmp_path):
    up, age = views.engine_liveness("2020-01-01T00:00:00+00:00")
    assert not up and age > 1e7
    assert views.engine_liveness(None) == (False, None)
    assert views.engine_status(views.open_reader(fake_store))["up"]
    with pytest.raises(StoreError, match="no store at"):
        views.open_reader(tmp_path / "missing.db")


def test_study_queries(fake_store):
    db = open_store(fake_store)
    rows = views.comparison_rows(db, "demo", metric="accuracy", reference="baseline")
    assert [(r["generator"], r["amount"]) for r in rows] == [("ddpm", 100), ("ddpm", 500), ("gan", 100), ("gan", 500)]
    assert views.class_f1_deltas(db, "demo")["ddpm"]["covid19"]["mean"] == pytest.approx(0.04)  # stored headline
    assert views.study_analysis_info(db, "demo")["unit"] == "n = 5 units; unit = fold (seeds averaged within a fold)"
    qvu = views.quality_vs_utility(db, "demo")
    assert [p["generator"] for p in qvu] == ["ddpm", "gan"] and qvu[0]["quality"] == 40.0
    assert views.dependency_of_kind(db, "e" * 64, "train_classifier") == "c" * 64
    assert views.evaluation_key(db, "c" * 64) == "e" * 64
    assert views.reader_study_config(db, "demo") == {"images_per_class": 2, "real_fraction": 0.25}


def test_ratings_upsert_validate_and_summarise(store_db):
    record_rating(store_db, "s", "ann", "a.png", "gan", "viral", quality=4)
    record_rating(store_db, "s", "ann", "a.png", "gan", "viral", plausibility=2, guess="real")
    record_rating(store_db, "s", "ann", "b.png", "real", "viral", quality=2, plausibility=1, guess="synthetic")
    record_rating(store_db, "s", "bob", "a.png", "gan", "viral", quality=2, plausibility=3, guess="synthetic")
    rows = load_ratings(store_db, "s", "ann")
    assert [(r["image_path"], r["quality"], r["plausibility"], r["guess"]) for r in rows] == [
        ("a.png", 4, 2, "real"), ("b.png", 2, 1, "synthetic")]
    assert rated_images(store_db, "s", "ann") == {"a.png", "b.png"}
    summary = {r["source"]: r for r in rating_summary(store_db, "s")}
    assert list(summary) == ["real", "gan"]
    assert summary["gan"]["raters"] == 2 and summary["gan"]["quality"] == 3.0 and summary["gan"]["guessed_real"] == 0.5
    for bad in (dict(quality=6), dict(plausibility=0), dict(guess="maybe")):
        with pytest.raises(StoreError):
            record_rating(store_db, "s", "ann", "c.png", "gan", "viral", **bad)
    with pytest.raises(StoreError, match="rater name"):
        record_rating(store_db, "s", " ", "c.png", "gan", "viral", quality=3)


def _add_quality(db_path, *, meaningful: int = 1) -> None:
    """Held-out FID and per-fold near-copy rates for the fake store's two generators (ddpm q0, gan q1)."""
    with sqlite3.connect(db_path) as conn:
        for i in range(2):
            conn.executemany(
                "INSERT INTO quality (job_key, reference, class_name, metric, features, value, n_real, n_fake,"
                " meaningful, note) VALUES (?, ?, '', ?, ?, ?, 50, 50, ?, ?)",
                [(f"q{i}" + "0" * 62, "heldout", "fid", "inception", 45.0 + 25 * i, meaningful,
                  None if meaningful else "no class has enough images: mean of 3 classes, not meaningful"),
                 (f"q{i}" + "0" * 62, "train", "memorised_fraction", "pixels", 0.02 * i, 1, None),
                 (f"q{i}" + "0" * 62, "train", "memorised_fraction", "inception", 0.5, 1, None)])


def test_quality_vs_utility_has_both_references_and_the_near_copy_rate(fake_store):
    _add_quality(fake_store, meaningful=0)
    db = open_store(fake_store)
    qvu = {p["generator"]: p for p in views.quality_vs_utility(db, "demo")}
    assert qvu["gan"]["quality"] == 65.0 and qvu["gan"]["quality_heldout"] == 70.0
    assert qvu["gan"]["near_copies"] == pytest.approx(0.02)  # the pixel-space rate, not the feature-space one
    assert qvu["ddpm"]["near_copies"] == 0.0 and qvu["ddpm"]["not_meaningful"] == ["quality_heldout"]
    headline = {r["generator"]: r for r in views.headline_rows(db, "demo", metric="accuracy")}
    assert qvu["ddpm"]["utility"] == pytest.approx(headline["ddpm"]["mean"]) and qvu["ddpm"]["n"] == 5
    duplicate = {p["generator"]: p for p in views.quality_vs_utility(db, "demo", reference="duplicate")}
    assert duplicate["gan"]["utility"] == pytest.approx(headline["gan"]["mean"] / 2)


def test_quality_summary_averages_units_and_keeps_flags(fake_store):
    from xaug.store.analysis import load_quality_summary

    _add_quality(fake_store, meaningful=0)
    with sqlite3.connect(fake_store) as conn:  # a second unit of ddpm, meaningful: the mean is not meaningful
        conn.execute("UPDATE jobs SET config_json = ? WHERE key = ?",
                     ('{"generator": {"name": "ddpm"}, "fold": 1}', "q1" + "0" * 62))
    rows = {(r["generator"], r["reference"], r["metric"], r["features"]): r
            for r in load_quality_summary(open_store(fake_store), "demo")}
    fid = rows[("ddpm", "train", "fid", "inception")]
    assert fid["value"] == pytest.approx(52.5) and fid["units"] == 2 and fid["meaningful"]
    held = rows[("ddpm", "heldout", "fid", "inception")]
    assert held["value"] == pytest.approx(57.5) and not held["meaningful"] and "not meaningful" in held["note"]
