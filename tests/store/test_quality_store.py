"""Quality rows carry their reference, a meaningful flag and a note; a store made before them is migrated."""

import sqlite3

import sqlite_utils

from xaug.store.db import open_store
from xaug.store.migrations import migrations
from xaug.store.quality import load_quality, record_quality


def test_rows_of_both_references_live_side_by_side_and_re_recording_replaces_them(tmp_path):
    db = open_store(tmp_path / "x.db")
    row = dict(class_name="viral", metric="fid", features="pixels", value=1.0, std=None, n_real=9, n_fake=50)
    record_quality(db, "k", [dict(row, reference="train"),
                             dict(row, reference="heldout", value=2.0, meaningful=False, note="too few")])
    rows = {r["reference"]: r for r in load_quality(db, "k")}
    assert rows["train"]["value"] == 1.0 and rows["train"]["meaningful"] == 1 and rows["train"]["note"] is None
    assert rows["heldout"]["value"] == 2.0 and rows["heldout"]["meaningful"] == 0 and rows["heldout"]["note"]
    record_quality(db, "k", [dict(row, reference="train", value=3.0)])
    assert [(r["reference"], r["value"]) for r in load_quality(db, "k")] == [("train", 3.0)]


def test_a_store_from_before_references_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(sqlite3.connect(path))
    migrations.apply(db, stop_before="m002_quality_references")
    db.execute("INSERT INTO quality VALUES ('k', '', 'fid', 'pixels', 5.0, NULL, 10, 10)")
    db.execute("INSERT INTO quality VALUES ('k', '', 'ms_ssim', 'pixels', 0.4, NULL, 0, 20)")
    db.conn.commit()
    db.conn.close()
    rows = {r["metric"]: r for r in load_quality(open_store(path), "k")}
    assert rows["fid"]["reference"] == "train" and rows["fid"]["meaningful"] == 1 and rows["fid"]["value"] == 5.0
    assert rows["ms_ssim"]["reference"] == ""  # synthetic pairs: no reference
