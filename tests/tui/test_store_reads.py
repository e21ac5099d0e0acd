"""The store read functions the TUI shares with the CLI: queue listing and order, read-only connections, study
queries, and the reader-study ratings."""

from __future__ import annotations

import sqlite3

import pytest

from xaug.store.errors import StoreError
from xaug.store import open_store
from xaug.store.db import store_errors
from xaug.store.analysis import load_analysis, load_comparisons, load_headline, load_quality_summary
from xaug.store.jobs import QUEUE_ORDER, list_jobs, load_job_deps, study_counts
from xaug.store.ratings import load_ratings, rated_images, rating_summary, record_rating
from xaug.store.studies import study_classes
from xaug.tui.screens.study import quality_vs_utility
from xaug.tui.widgets.engine_bar import engine_state


def test_list_jobs_filters_orders_and_counts(fake_store):
    db = open_store(fake_store)
    rows = list_jobs(db, order="queue", with_deps=False)
    assert len(rows) == 12 and "config_json" in rows[0]
    assert set(list_jobs(db, fields=("label",), with_deps=False)[0]) == {"key", "status", "label", "studies"}
    ranks = [QUEUE_ORDER.index(r["status"]) for r in rows]
    assert ranks == sorted(ranks) and rows[0]["status"] == "running"
    failed = list_jobs(db, status="failed", with_deps=False)
    assert [r["key"] for r in failed] == ["f" * 64] and failed[0]["studies"] == "demo"
    assert list_jobs(db, study="other") == []
    assert [r["key"] for r in list_jobs(db, status="failed")] == ["f" * 64]  # with deps: filtered afterwards
    assert study_counts(db, None) == {"queued": 1, "running": 1, "done": 8, "failed": 1, "cancelled": 1,
                                      "blocked": 0, "total": 12}


def test_engine_liveness_and_read_only_connections(fake_store, tmp_path):
    gone = engine_state({"pid": 1, "host": "gpu-box", "started_at": "2020-01-01T00:00:00+00:00",
                         "heartbeat_at": "2020-01-01T00:00:00+00:00"}, paused=False)
    assert not gone["up"] and gone["heartbeat_age_s"] > 1e7
    nobody = engine_state(None, paused=True)
    assert not nobody["up"] and nobody["heartbeat_age_s"] is None and nobody["paused"]
    reader = open_store(fake_store, read_only=True)
    assert len(list_jobs(reader)) == 12
    with pytest.raises(StoreError, match="read-only"), store_errors(fake_store):
        record_rating(reader, "demo", "ann", "a.png", "gan", "viral", quality=3)
    with pytest.raises(StoreError, match="no store at"):
        open_store(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()


def test_study_queries(fake_store):
    db = open_store(fake_store)
    rows = load_comparisons(db, "demo", metric="accuracy", reference="baseline", per_class=False)
    assert [(r["generator"], r["amount"]) for r in rows] == [("ddpm", 100), ("ddpm", 500), ("gan", 100), ("gan", 500)]
    assert len(load_comparisons(db, "demo", per_class=True)) == 12
    f1 = {(r["generator"], r["class_name"]): r for r in load_headline(db, "demo", metric="f1", per_class=True)}
    assert f1[("ddpm", "covid19")]["mean"] == pytest.approx(0.04)  # stored headline
    assert load_analysis(db, "demo")["unit"] == "n = 5 units; unit = fold (seeds averaged within a fold)"
    qvu = _qvu(db)
    assert [p["generator"] for p in qvu] == ["ddpm", "gan"] and qvu[0]["quality"] == 40.0
    assert {j["kind"] for j in load_job_deps(db, "e" * 64).values()} == {"prepare_data", "train_classifier"}
    assert [j["key"] for j in load_job_deps(db, "c" * 64, dependents=True).values()] == ["e" * 64]
    assert study_classes(db, "demo") == ["healthy", "viral", "covid19"]


def _qvu(db, metric="accuracy", reference="baseline"):
    return quality_vs_utility(load_quality_summary(db, "demo"), load_headline(db, "demo", metric=metric,
                                                                              reference=reference))


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
    qvu = {p["generator"]: p for p in _qvu(db)}
    assert qvu["gan"]["quality"] == 65.0 and qvu["gan"]["quality_heldout"] == 70.0
    assert qvu["gan"]["near_copies"] == pytest.approx(0.02)  # the pixel-space rate, not the feature-space one
    assert qvu["ddpm"]["near_copies"] == 0.0 and qvu["ddpm"]["not_meaningful"] == ["quality_heldout"]
    headline = {r["generator"]: r for r in load_headline(db, "demo", metric="accuracy", reference="baseline",
                                                          per_class=False)}
    assert qvu["ddpm"]["utility"] == pytest.approx(headline["ddpm"]["mean"]) and qvu["ddpm"]["n"] == 5
    duplicate = {p["generator"]: p for p in _qvu(db, reference="duplicate")}
    assert duplicate["gan"]["utility"] == pytest.approx(headline["gan"]["mean"] / 2)


def test_quality_summary_averages_units_and_keeps_flags(fake_store):
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
