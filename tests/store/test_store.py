"""Store: migrations, file permissions, WAL, and record/load round trips."""

import os
import stat

import numpy as np
import pytest

from xaug.store.errors import StoreError
from xaug.store import artifact_root, data_version, open_store
from xaug.store.artifacts import load_artifacts, record_artifact
from xaug.store.metrics import (
    delete_metrics_after,
    load_class_metrics,
    load_confusion,
    load_metrics,
    load_results,
    record_class_metrics,
    record_confusion,
    record_metric,
    record_metrics,
    record_results,
)
from xaug.store.studies import (
    load_split_members,
    load_study,
    pseudonymise,
    record_split_members,
    record_study,
    store_salt,
)


def test_store_is_private_wal_and_migrated(tmp_path):
    path = tmp_path / "sub" / "x.db"
    db = open_store(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"jobs", "metrics", "class_metrics", "confusion", "artifacts", "studies"} <= set(db.table_names())
    applied = [m["name"] for m in db["_sqlite_migrations"].rows]
    assert applied[0] == "m001_initial" and len(applied) == len(set(applied))
    open_store(path)  # re-opening applies nothing twice
    assert db["_sqlite_migrations"].count == len(applied)


def test_not_a_database_is_a_store_error(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="junk.db"):
        open_store(path)


def test_artifact_root_sits_beside_db(tmp_path):
    assert artifact_root(tmp_path / "runs" / "q.db") == tmp_path / "runs" / "q-artifacts"


def test_metrics_replace_not_duplicate(store_db):
    record_metric(store_db, "k", "loss", 1, 0.5)
    record_metric(store_db, "k", "loss", 1, 0.4)
    record_metrics(store_db, "k", 2, {"loss": 0.3, "lr": 1e-4})
    rows = load_metrics(store_db, "k", "loss")
    assert [(r["step"], r["value"]) for r in rows] == [(1, 0.4), (2, 0.3)]
    delete_metrics_after(store_db, "k", 1)
    assert [r["step"] for r in load_metrics(store_db, "k")] == [1]


def test_results_class_metrics_confusion_round_trip(store_db):
    record_results(store_db, "k", {"accuracy": 0.75, "macro_f1": 0.5})
    assert load_results(store_db, "k") == {"accuracy": 0.75, "macro_f1": 0.5}
    rows = [dict(class_name="a", precision=1.0, recall=0.5, f1=2 / 3, auroc=0.9, support=2),
            dict(class_name="b", precision=0.5, recall=1.0, f1=2 / 3, auroc=None, support=1)]
    record_class_metrics(store_db, "k", rows)
    loaded = load_class_metrics(store_db, "k")
    assert [r["class_name"] for r in loaded] == ["a", "b"]
    assert loaded[1]["auroc"] is None and loaded[0]["support"] == 2
    matrix = np.array([[1, 1], [0, 1]])
    record_confusion(store_db, "k", ["a", "b"], matrix)
    assert load_confusion(store_db, "k", ["a", "b"]) == [[1, 1], [0, 1]]


def test_artifacts_round_trip(store_db):
    record_artifact(store_db, "k", "sample", "jobs/s/x.png", class_name="viral", seed=3, meta={"i": 1})
    record_artifact(store_db, "k", "sample", "jobs/s/x.png", class_name="viral", seed=4)
    rows = load_artifacts(store_db, "k", "sample", "viral")
    assert len(rows) == 1 and rows[0]["seed"] == 4


def test_study_and_split_round_trip_with_pseudonyms(store_db):
    record_study(store_db, "s", "r.yaml", "name: s\n", {"name": "s"})
    record_study(store_db, "s", "r.yaml", "name: s\n# edited\n", {"name": "s"})
    assert load_study(store_db, "s")["recipe_yaml"].endswith("# edited\n")
    db_path = store_db.execute("PRAGMA database_list").fetchone()[2]
    salt = store_salt(db_path)
    assert salt == store_salt(db_path)
    pseudo = pseudonymise(salt, "PAT-0001")
    assert pseudo != "PAT-0001" and len(pseudo) == 16
    assert pseudonymise(b"another salt", "PAT-0001") != pseudo
    record_split_members(store_db, "prep", [dict(fold=0, split="test", image_id="i1", patient=pseudo, label="a")])
    assert load_split_members(store_db, "prep", 0)[0]["patient"] == pseudo


def test_data_version_changes_on_other_connection_commit(tmp_path):
    a = open_store(tmp_path / "x.db")
    b = open_store(tmp_path / "x.db")
    before = data_version(a)
    record_metric(b, "k", "loss", 0, 1.0)
    assert data_version(a) != before


def test_a_store_that_must_exist_is_never_created(tmp_path):
    from xaug.store.db import require_store

    missing = tmp_path / "missing.db"
    for attempt in (lambda: open_store(missing, create=False), lambda: open_store(missing, read_only=True),
                    lambda: require_store(missing)):
        with pytest.raises(StoreError, match="no store at .*missing.db: submit a recipe to create it"):
            attempt()
    assert list(tmp_path.iterdir()) == []
    open_store(missing)  # created when asked to
    assert require_store(missing) == missing and open_store(missing, create=False) is not None
