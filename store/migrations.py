"""The versioned schema of the study database. Add a new function to change it; never edit an applied one."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from sqlite_utils.migrations import Migrations

migrations = Migrations("xaug")

_INITIAL_SCHEMA = [
    # Key/value facts about this store (the pseudonym key lived here until m006 moved it to a key file).
    """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    # One row per study (a recipe by name); re-submitting a recipe updates it.
    """CREATE TABLE studies (
        name TEXT PRIMARY KEY,
        recipe_path TEXT,
        recipe_yaml TEXT NOT NULL,
        recipe_json TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    # Jobs are identified by a content hash of kind + config + input keys, so studies can share them.
    """CREATE TABLE jobs (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        label TEXT NOT NULL,
        config_json TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued'
            CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        priority INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 3,
        gpus_needed INTEGER NOT NULL DEFAULT 0,
        progress REAL NOT NULL DEFAULT 0,
        progress_total REAL NOT NULL DEFAULT 0,
        message TEXT,
        eta_s REAL,
        pid INTEGER,
        host TEXT,
        gpus TEXT,
        log_path TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT,
        heartbeat_at TEXT,
        exit_code INTEGER,
        error TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE INDEX jobs_status ON jobs (status, priority)""",
    """CREATE TABLE study_jobs (
        study TEXT NOT NULL REFERENCES studies(name) ON DELETE CASCADE,
        job_key TEXT NOT NULL REFERENCES jobs(key),
        PRIMARY KEY (study, job_key)
    )""",
    """CREATE INDEX study_jobs_job ON study_jobs (job_key)""",
    """CREATE TABLE job_deps (
        job_key TEXT NOT NULL REFERENCES jobs(key),
        dep_key TEXT NOT NULL REFERENCES jobs(key),
        PRIMARY KEY (job_key, dep_key)
    )""",
    """CREATE INDEX job_deps_dep ON job_deps (dep_key)""",
    # Step-wise curves (losses, learning rate, ADA p, validation loss...). One row per (job, name, step):
    # a resumed job that re-records a step replaces it instead of duplicating it.
    """CREATE TABLE metrics (
        job_key TEXT NOT NULL,
        name TEXT NOT NULL,
        step INTEGER NOT NULL,
        value REAL NOT NULL,
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (job_key, name, step)
    )""",
    # Final scalar results of a job: accuracy, balanced_accuracy, macro_f1, auroc, best_epoch, ...
    """CREATE TABLE results (
        job_key TEXT NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (job_key, name)
    )""",
    """CREATE TABLE class_metrics (
        job_key TEXT NOT NULL,
        class_name TEXT NOT NULL,
        precision REAL NOT NULL,
        recall REAL NOT NULL,
        f1 REAL NOT NULL,
        auroc REAL,
        support INTEGER NOT NULL,
        PRIMARY KEY (job_key, class_name)
    )""",
    """CREATE TABLE confusion (
        job_key TEXT NOT NULL,
        true_class TEXT NOT NULL,
        pred_class TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (job_key, true_class, pred_class)
    )""",
    # Files a job wrote under the artifact folder (paths are relative to it): checkpoints, samples, grids, logs.
    """CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY,
        job_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        class_name TEXT,
        seed INTEGER,
        step INTEGER,
        meta_json TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (job_key, kind, path)
    )""",
    """CREATE INDEX artifacts_job ON artifacts (job_key, kind)""",
    # Which image is in which split of which fold. Patients appear only as salted pseudonyms.
    """CREATE TABLE split_members (
        job_key TEXT NOT NULL,
        fold INTEGER NOT NULL,
        split TEXT NOT NULL CHECK (split IN ('train', 'val', 'test')),
        image_id TEXT NOT NULL,
        patient TEXT NOT NULL,
        label TEXT NOT NULL,
        PRIMARY KEY (job_key, fold, image_id)
    )""",
    # Images a loader could not read and skipped because the recipe said so.
    """CREATE TABLE skipped_images (
        job_key TEXT NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (job_key, source)
    )""",
    # Image quality of a generator's samples; class_name '' means all classes together.
    """CREATE TABLE quality (
        job_key TEXT NOT NULL,
        class_name TEXT NOT NULL,
        metric TEXT NOT NULL,
        features TEXT NOT NULL,
        value REAL NOT NULL,
        std REAL,
        n_real INTEGER NOT NULL,
        n_fake INTEGER NOT NULL,
        PRIMARY KEY (job_key, class_name, metric, features)
    )""",
    # Study-level comparisons of a (generator, classifier, amount) arm against a reference arm.
    """CREATE TABLE comparisons (
        study TEXT NOT NULL,
        generator TEXT NOT NULL,
        classifier TEXT NOT NULL,
        amount INTEGER NOT NULL,
        reference TEXT NOT NULL,
        metric TEXT NOT NULL,
        class_name TEXT NOT NULL DEFAULT '',
        n INTEGER NOT NULL,
        mean REAL,
        sd REAL,
        ci_low REAL,
        ci_high REAL,
        statistic REAL,
        p_value REAL,
        p_adjusted REAL,
        test TEXT NOT NULL,
        correction TEXT NOT NULL,
        PRIMARY KEY (study, generator, classifier, amount, reference, metric, class_name)
    )""",
    """CREATE TABLE correlations (
        study TEXT NOT NULL,
        quality_metric TEXT NOT NULL,
        utility_metric TEXT NOT NULL,
        method TEXT NOT NULL,
        n INTEGER NOT NULL,
        r REAL,
        ci_low REAL,
        ci_high REAL,
        p_value REAL,
        PRIMARY KEY (study, quality_metric, utility_metric, method)
    )""",
    # Reader study: one rating per rater per image.
    """CREATE TABLE ratings (
        id INTEGER PRIMARY KEY,
        study TEXT NOT NULL,
        rater TEXT NOT NULL,
        image_path TEXT NOT NULL,
        source TEXT NOT NULL,
        class_name TEXT NOT NULL,
        quality INTEGER CHECK (quality BETWEEN 1 AND 5),
        plausibility INTEGER CHECK (plausibility BETWEEN 1 AND 3),
        guess TEXT CHECK (guess IN ('real', 'synthetic')),
        rated_at TEXT NOT NULL,
        UNIQUE (study, rater, image_path)
    )""",
    # The engine that owns this store (at most one row) and the state of the queue.
    """CREATE TABLE engine (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL
    )""",
    """CREATE TABLE queue_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE gpu_stats (
        gpu INTEGER PRIMARY KEY,
        name TEXT,
        utilization REAL,
        memory_used_mb REAL,
        memory_total_mb REAL,
        updated_at TEXT NOT NULL
    )""",
]


@migrations()
def m001_initial(db):
    """The first schema: studies, the job queue, metrics, per-class results, artifacts, quality, analysis."""
    for statement in _INITIAL_SCHEMA:
        db.execute(statement)


@migrations()
def m002_quality_references(db):
    """Quality rows say which real images they were computed against (`reference`: 'train', 'heldout', or '' for
    values of synthetic images alone), whether their class had enough images (`meaningful`) and why not (`note`)."""
    quality = db["quality"]
    quality.add_column("reference", str, not_null_default="train")
    quality.add_column("meaningful", int, not_null_default=1)
    quality.add_column("note", str)
    db.execute("UPDATE quality SET reference = '' WHERE metric = 'ms_ssim'")  # synthetic pairs: no reference
    quality.transform(pk=("job_key", "reference", "class_name", "metric", "features"))


_STATS_SCHEMA = [
    # split_members gains the repetition of the k-fold split (repeated k-fold: a fresh patient partition each).
    # Rebuilt in SQL rather than with Table.transform, which would drop the CHECK constraint on `split`.
    """CREATE TABLE split_members_new (
        job_key TEXT NOT NULL,
        repeat INTEGER NOT NULL DEFAULT 0,
        fold INTEGER NOT NULL,
        split TEXT NOT NULL CHECK (split IN ('train', 'val', 'test')),
        image_id TEXT NOT NULL,
        patient TEXT NOT NULL,
        label TEXT NOT NULL,
        PRIMARY KEY (job_key, repeat, fold, image_id)
    )""",
    """INSERT INTO split_members_new (job_key, repeat, fold, split, image_id, patient, label)
        SELECT job_key, 0, fold, split, image_id, patient, label FROM split_members""",
    """DROP TABLE split_members""",
    """ALTER TABLE split_members_new RENAME TO split_members""",
    # One row per analysed study: what one replication unit is, how many there are, and the settings used.
    """CREATE TABLE analyses (
        study TEXT PRIMARY KEY,
        n_units INTEGER NOT NULL,
        repeats INTEGER NOT NULL,
        unit TEXT NOT NULL,
        test TEXT NOT NULL,
        correction TEXT NOT NULL,
        alpha REAL NOT NULL,
        test_train_ratio REAL,
        amounts TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT ''
    )""",
    # The headline: each generator's effect over classifiers and the amounts common to all generators.
    """CREATE TABLE headline (
        study TEXT NOT NULL,
        generator TEXT NOT NULL,
        reference TEXT NOT NULL,
        metric TEXT NOT NULL,
        class_name TEXT NOT NULL DEFAULT '',
        n INTEGER NOT NULL,
        mean REAL,
        sd REAL,
        ci_low REAL,
        ci_high REAL,
        statistic REAL,
        p_value REAL,
        p_adjusted REAL,
        test TEXT NOT NULL,
        correction TEXT NOT NULL,
        amounts TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (study, generator, reference, metric, class_name)
    )""",
    # Per classifier x arm x metric: mean and SD over replication units of the unit means (seeds averaged).
    """CREATE TABLE arm_summaries (
        study TEXT NOT NULL,
        classifier TEXT NOT NULL,
        arm TEXT NOT NULL,
        generator TEXT NOT NULL DEFAULT '',
        amount INTEGER NOT NULL DEFAULT 0,
        metric TEXT NOT NULL,
        class_name TEXT NOT NULL DEFAULT '',
        n INTEGER NOT NULL,
        seeds INTEGER NOT NULL,
        mean REAL,
        sd REAL,
        PRIMARY KEY (study, classifier, arm, generator, amount, metric, class_name)
    )""",
]


@migrations()
def m003_stats_repeats_headline(db):
    """Repeated k-fold (split_members.repeat), the stored analysis (analyses, headline, arm_summaries)."""
    for statement in _STATS_SCHEMA:
        db.execute(statement)


@migrations()
def m004_slurm_journal(db):
    """Jobs run by Slurm: the Slurm job id and its last seen state; and the sequence number of the last entry of
    a job's journal (the file a remote worker records into) that was applied to this store."""
    db.execute("ALTER TABLE jobs ADD COLUMN slurm_job_id TEXT")
    db.execute("ALTER TABLE jobs ADD COLUMN slurm_state TEXT")
    db.execute("ALTER TABLE jobs ADD COLUMN journal_seq INTEGER NOT NULL DEFAULT 0")


@migrations()
def m005_queue_blocked_status(db):
    """Jobs can be stored as 'blocked' (a dependency failed or was cancelled); existing ones are blocked now.

    SQLite cannot ALTER a CHECK constraint; loosening one by editing the stored schema, with the schema version
    bumped, is the procedure SQLite documents for it (https://sqlite.org/lang_altertable.html, "otheralter").
    """
    from xaug.store.jobs import refresh_blocked

    version = db.execute("PRAGMA schema_version").fetchone()[0]
    db.execute("PRAGMA writable_schema = ON")
    db.execute("UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'jobs'",
               ["'failed', 'cancelled'))", "'failed', 'cancelled', 'blocked'))"])
    db.execute(f"PRAGMA schema_version = {version + 1}")
    db.execute("PRAGMA writable_schema = OFF")
    sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone()[0]
    if "'blocked'" not in sql:
        raise RuntimeError(f"migration m005: the jobs table's status CHECK was not found in: {sql}")
    refresh_blocked(db)


@migrations()
def m006_safety_pseudonym_key_file(db):
    """The pseudonym key leaves the database for a 0600 key file beside it (studies.py), and stored strings that
    may name patient files go: skipped images' absolute paths become keyed hashes (their reason is kept), and the
    error of a prepare_data job that names a file of its dataset is replaced by a note to run it again. Files
    already in the artifact folder become 0600, its folders 0700, as new ones are (db.py)."""
    from xaug.store.db import artifact_root
    from xaug.store.studies import key_path, pseudonymise, write_key_file

    database = next((r[2] for r in db.execute("PRAGMA database_list").fetchall() if r[1] == "main"), "")
    if database:
        _make_private(artifact_root(database))
    row = db.execute("SELECT value FROM meta WHERE key = 'patient_salt'").fetchone()
    if row is None or not database:
        return  # a new store, or an in-memory one (a remote worker's scratch copy): nothing to move
    key_file = key_path(database)
    if not key_file.exists():
        write_key_file(key_file, row[0])
    elif key_file.read_text().strip() != row[0]:
        raise RuntimeError(f"migration m006: {key_file} holds another pseudonym key than this store; move it away "
                           "and open the store again")
    key = bytes.fromhex(row[0])
    for job_key, source in db.execute("SELECT job_key, source FROM skipped_images").fetchall():
        if source.startswith("/"):
            suffix = PurePosixPath(source).suffix
            db.execute("UPDATE skipped_images SET source = ? WHERE job_key = ? AND source = ?",
                       [f"file-{pseudonymise(key, source)}{suffix}", job_key, source])
    for job_key, config, error in db.execute(
            "SELECT key, config_json, error FROM jobs WHERE kind = 'prepare_data' AND error IS NOT NULL").fetchall():
        dataset = (json.loads(config).get("dataset") or {}).get("path")
        if dataset and str(PurePosixPath(dataset).parent) in error:
            db.execute("UPDATE jobs SET error = ? WHERE key = ?",
                       ["the error named files of the dataset and was removed (migration m006); run the job again "
                        "(xaug retry) to see it with paths made private", job_key])
    db.execute("DELETE FROM meta WHERE key = 'patient_salt'")


def _make_private(folder: Path) -> None:
    """chmod 0700 every folder and 0600 every file below `folder` (those this user may change)."""
    for path in [folder, *folder.rglob("*")] if folder.is_dir() else []:
        try:
            path.chmod(0o700 if path.is_dir() else 0o600)
        except OSError:
            pass  # another user's file in a shared folder: theirs to protect


@migrations()
def m007_data_subsample_external(db):
    """dataset.subsample's draw per class (subsample_draws) and the members of the external test set
    (external_members, patients as salted pseudonyms), both written by prepare_data; arm_summaries gain `test_set`
    ('test': the folds' test splits; 'external': dataset.external_test), part of their primary key."""
    db["arm_summaries"].add_column("test_set", str, not_null_default="test")
    db["arm_summaries"].transform(pk=("study", "classifier", "arm", "generator", "amount", "metric", "class_name",
                                      "test_set"))
    db.execute("""CREATE TABLE subsample_draws (
        job_key TEXT NOT NULL,
        class_name TEXT NOT NULL,
        target INTEGER NOT NULL,
        available_images INTEGER NOT NULL,
        available_patients INTEGER NOT NULL,
        selected_images INTEGER NOT NULL,
        selected_patients INTEGER NOT NULL,
        PRIMARY KEY (job_key, class_name)
    )""")
    db.execute("""CREATE TABLE external_members (
        job_key TEXT NOT NULL,
        image_id TEXT NOT NULL,
        patient TEXT NOT NULL,
        label TEXT NOT NULL,
        PRIMARY KEY (job_key, image_id)
    )""")


@migrations()
def m008_gpubench_gpu_memory(db):
    """GPU memory per job, so the local scheduler can run several small jobs on one GPU: the memory declared in the
    recipe (`resources.gpu_memory_gb`), the group whose measured peaks estimate it (jobs of one kind and one model
    spec), and the peak the job's worker measured when it finished."""
    db.execute("ALTER TABLE jobs ADD COLUMN gpu_memory_mb REAL")
    db.execute("ALTER TABLE jobs ADD COLUMN memory_group TEXT")
    db.execute("ALTER TABLE jobs ADD COLUMN peak_gpu_memory_mb REAL")
