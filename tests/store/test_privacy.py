"""No identifier-bearing strings in the store, a pseudonym key outside the database, private artifact files."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

from xaug.engine.recipe.schema import DatasetConfig, SplitsConfig
from xaug.store import artifact_root, open_store
from xaug.store.jobs import claim_job, load_job, submit_study
from xaug.store.studies import key_path, pseudonymise, store_salt

PATIENTS = [f"PAT{n:04d}" for n in range(1, 9)]


def _dataset(root: Path) -> None:
    """Two classes of four patients, two images each, ids in the file names; one unreadable file per class."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(["healthy", "viral"]):
        (root / name).mkdir(parents=True)
        for patient in PATIENTS[4 * c: 4 * c + 4]:
            for i in range(2):
                pixels = rng.integers(0, 255, (20, 24), dtype=np.uint8)
                Image.fromarray(pixels).save(root / name / f"{patient}_{i}.png")
        (root / name / f"{PATIENTS[4 * c]}_broken.png").write_bytes(b"not a png")


def _run_prepare(db_path: Path, dataset: DatasetConfig) -> dict:
    """Submit a prepare_data job and run it the way the engine does: claimed, then a worker process."""
    db = open_store(db_path)
    config = {"dataset": dataset.model_dump(mode="json"), "splits": SplitsConfig(folds=2).model_dump(mode="json")}
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    job = SimpleNamespace(key=key, kind="prepare_data", label="prepare data", config=config, priority=0,
                          max_attempts=1, gpus_needed=0, gpu_memory_mb=None, memory_group=None, deps=[])
    submit_study(db, "study", None, "name: study", {}, [job])
    assert claim_job(db, lambda job: [], host="test", log_path_for=lambda job: "")["key"] == key
    subprocess.run([sys.executable, "-m", "xaug.engine.queue.worker", "--store", str(db_path), "--job", key],
                   capture_output=True, timeout=300)
    return load_job(db, key)


def test_a_study_store_names_no_patient_and_its_files_are_private(tmp_path):
    data = tmp_path / "data"
    _dataset(data)
    db_path = tmp_path / "runs" / "study.db"
    base = dict(source="folder", path=str(data), image_size=16, patient_pattern=r"^(PAT\d{4})_")
    done = _run_prepare(db_path, DatasetConfig(**base, on_unreadable="skip"))
    failed = _run_prepare(db_path, DatasetConfig(**base, on_unreadable="error"))
    assert done["status"] == "done" and failed["status"] == "failed"

    with sqlite3.connect(db_path) as conn:  # what `sqlite3 study.db .dump` prints (no sqlite3 tool needed)
        dump = "\n".join(conn.iterdump())
    assert "skipped_images" in dump and "PAT0" not in dump  # neither in skipped images nor in the job's error
    key = store_salt(db_path)
    assert f"{pseudonymise(key, 'PAT0001')}_broken.png" in dump  # the patient part became its pseudonym
    assert "patient_salt" not in dump and key.hex() not in dump
    assert failed["error"].startswith(f"DataError: healthy/{pseudonymise(key, 'PAT0001')}_broken.png: ")
    for path in artifact_root(db_path).rglob("*"):
        assert b"PAT0" not in path.read_bytes() if path.is_file() else True
    modes = {stat.S_IMODE(p.stat().st_mode) for p in artifact_root(db_path).rglob("*") if p.is_file()}
    folders = {stat.S_IMODE(p.stat().st_mode) for p in artifact_root(db_path).rglob("*") if p.is_dir()}
    assert modes == {0o600} and folders == {0o700}
    assert stat.S_IMODE(key_path(db_path).stat().st_mode) == 0o600


def test_the_key_comes_from_the_environment_when_set(tmp_path, monkeypatch):
    monkeypatch.setenv("XAUG_PSEUDONYM_KEY", "00ff" * 8)
    assert store_salt(tmp_path / "x.db") == bytes.fromhex("00ff" * 8)
    assert not key_path(tmp_path / "x.db").exists()


def test_migration_moves_the_key_out_and_hashes_stored_paths(tmp_path):
    db_path = tmp_path / "old.db"
    open_store(db_path).conn.close()
    old_sample = artifact_root(db_path) / "jobs" / "sample" / "k" / "00000.png"
    old_sample.parent.mkdir(parents=True)
    old_sample.write_bytes(b"png")
    old_sample.chmod(0o644)
    old_sample.parent.chmod(0o755)
    with sqlite3.connect(db_path) as conn:  # as a store before m006 left it
        conn.execute("INSERT INTO meta (key, value) VALUES ('patient_salt', ?)", ("ab" * 16,))
        conn.execute("INSERT INTO skipped_images VALUES ('k', '/data/viral/PAT0007_1.dcm', 'unreadable')")
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm006_safety_pseudonym_key_file'")
    db = open_store(db_path)
    assert key_path(db_path).read_text().strip() == "ab" * 16
    assert stat.S_IMODE(key_path(db_path).stat().st_mode) == 0o600
    assert list(db.query("SELECT * FROM meta WHERE key = 'patient_salt'")) == []
    (row,) = db.query("SELECT source, reason FROM skipped_images")
    expected = pseudonymise(bytes.fromhex("ab" * 16), "/data/viral/PAT0007_1.dcm")
    assert row == {"source": f"file-{expected}.dcm", "reason": "unreadable"}
    assert stat.S_IMODE(old_sample.stat().st_mode) == 0o600
    assert stat.S_IMODE(old_sample.parent.stat().st_mode) == 0o700
