"""Store tables of dataset preparation: the subsample draw, the external test set, and arm summaries per test set."""

from __future__ import annotations

import sqlite3

import sqlite_utils

from xaug.store import open_store
from xaug.store.analysis import load_arm_summaries, record_analysis
from xaug.store.migrations import migrations
from xaug.store.studies import load_external_members, load_subsample, record_external_members, record_subsample

DRAW = dict(class_name="viral", target=74, available_images=300, available_patients=120, selected_images=74,
            selected_patients=31)


def test_subsample_draws_and_external_members_round_trip(tmp_path):
    db = open_store(tmp_path / "x.db")
    record_subsample(db, "k", [DRAW, dict(DRAW, class_name="healthy", target=673, selected_images=672)])
    record_subsample(db, "k", [DRAW])  # recording again replaces
    assert [{k: r[k] for k in DRAW} for r in load_subsample(db, "k")] == [DRAW]
    record_external_members(db, "k", [dict(image_id="viral/00003", patient="ab12", label="viral")])
    assert [(r["image_id"], r["patient"]) for r in load_external_members(db, "k")] == [("viral/00003", "ab12")]
    assert load_subsample(db, "other") == [] and load_external_members(db, "other") == []


def test_arm_summaries_of_an_older_store_become_test_rows(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(sqlite3.connect(path))
    migrations.apply(db, stop_before="m007_data_subsample_external")
    db.execute("INSERT INTO arm_summaries (study, classifier, arm, metric, n, seeds, mean, sd)"
               " VALUES ('s', 'resnet', 'baseline', 'accuracy', 5, 1, 0.7, 0.02)")
    db.conn.commit()
    db.conn.close()
    db = open_store(path)
    assert [(r["test_set"], r["mean"]) for r in load_arm_summaries(db, "s")] == [("test", 0.7)]
    summary = dict(classifier="resnet", arm="baseline", metric="accuracy", n=5, seeds=1, mean=0.6, sd=0.03)
    info = dict(n_units=5, repeats=1, unit="u", test="t", correction="c", alpha=0.05, test_train_ratio=0.25,
                amounts="", note="")
    record_analysis(db, "s", info, [], [dict(summary, mean=0.71), dict(summary, test_set="external")])
    assert [r["mean"] for r in load_arm_summaries(db, "s")] == [0.71]
    assert [r["mean"] for r in load_arm_summaries(db, "s", test_set="external")] == [0.6]


def test_a_classifier_run_shows_its_fold_evaluation_not_the_external_one(tmp_path):
    from types import SimpleNamespace

    from xaug.store.jobs import load_fold_evaluation, submit_study

    def job(key, kind, config, deps=()):
        return SimpleNamespace(key=key * 64, kind=kind, label=kind, config=config, priority=0, max_attempts=1,
                               gpus_needed=0, gpu_memory_mb=None, memory_group=None,
                               deps=[d * 64 for d in deps])

    db = open_store(tmp_path / "x.db")
    train = job("t", "train_classifier", {"fold": 0})
    external = job("x", "evaluate", {"fold": 0, "test_set": "external"}, "t")
    submit_study(db, "s", None, "name: s", {}, [train, external, job("e", "evaluate", {"fold": 0}, "t")])
    assert load_fold_evaluation(db, "t" * 64)["key"] == "e" * 64  # though the external one was stored first
