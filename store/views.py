"""Read-only queries behind the TUI (queue, job detail, gallery, study matrix) and the study export.

Every SQL statement the TUI needs lives here; the TUI itself only calls these named functions.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from pathlib import Path

import sqlite_utils

from xaug.engine.errors import StoreError
from xaug.store.db import BUSY_TIMEOUT_MS, artifact_root
from xaug.store.job_states import STATUSES

ENGINE_STALE_S = 15.0
"""An engine whose heartbeat is older than this is shown as down."""

JOB_STATUSES = STATUSES
"""Every job status, as the queue's state machine defines them."""

_QUEUE_COLUMNS = (
    "j.key, j.kind, j.label, j.status, j.priority, j.attempts, j.progress, j.progress_total, j.eta_s, j.gpus,"
    " j.message, j.created_at, j.started_at, j.ended_at, j.log_path, j.cancel_requested, j.slurm_job_id,"
    " j.slurm_state"
)


# --- connections -------------------------------------------------------------------------------------------------


def open_reader(db_path: str | Path) -> sqlite_utils.Database:
    """A read-only connection to an existing store, for a TUI worker thread (never migrates, never writes)."""
    path = Path(db_path)
    if not path.exists():
        raise StoreError(f"no store at {path}: run `xaug submit RECIPE --store {path}` first, or pass --store")
    try:
        conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a usable SQLite database: {exc}") from exc
    return sqlite_utils.Database(conn)


# --- queue ---------------------------------------------------------------------------------------------------------


def list_queue(db: sqlite_utils.Database, *, study: str | None = None, status: str | None = None) -> list[dict]:
    """Jobs for the queue table, oldest first, each with `studies` (comma-joined study names)."""
    where, params = [], []
    if study:
        where.append("j.key IN (SELECT job_key FROM study_jobs WHERE study = ?)")
        params.append(study)
    if status:
        where.append("j.status = ?")
        params.append(status)
    sql = (
        f"SELECT {_QUEUE_COLUMNS}, (SELECT group_concat(s.study, ',') FROM study_jobs s WHERE s.job_key = j.key)"
        " AS studies FROM jobs j"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY j.created_at, j.key"
    )
    cursor = db.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]


def queue_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """Number of jobs per status (every status present, zero when none)."""
    counts = dict.fromkeys(JOB_STATUSES, 0)
    for status, n in db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall():
        counts[status] = n
    return counts


def _age_s(stamp: str | None) -> float | None:
    """Seconds since an ISO timestamp from the store, or None."""
    if not stamp:
        return None
    then = _dt.datetime.fromisoformat(stamp)
    if then.tzinfo is None:
        then = then.replace(tzinfo=_dt.timezone.utc)
    return (_dt.datetime.now(_dt.timezone.utc) - then).total_seconds()


def engine_liveness(heartbeat_at: str | None) -> tuple[bool, float | None]:
    """(up, seconds since the heartbeat) for an engine heartbeat timestamp; recomputed as time passes."""
    age = _age_s(heartbeat_at)
    return age is not None and age < ENGINE_STALE_S, age


def engine_status(db: sqlite_utils.Database) -> dict:
    """Whether the engine is up (fresh heartbeat), its pid/host/heartbeat, and whether the queue is paused."""
    row = db.execute("SELECT pid, host, started_at, heartbeat_at FROM engine WHERE id = 1").fetchone()
    paused = db.execute("SELECT value FROM queue_state WHERE key = 'paused'").fetchone()
    status = {"up": False, "pid": None, "host": None, "heartbeat_at": None, "heartbeat_age_s": None,
              "paused": bool(paused and paused[0] not in ("0", "", "false"))}
    if row:
        up, age = engine_liveness(row[3])
        status.update(pid=row[0], host=row[1], heartbeat_at=row[3], heartbeat_age_s=age, up=up)
    return status


def list_gpu_stats(db: sqlite_utils.Database) -> list[dict]:
    """The engine's latest per-GPU utilisation and memory."""
    return list(db.query("SELECT gpu, name, utilization, memory_used_mb, memory_total_mb, updated_at"
                         " FROM gpu_stats ORDER BY gpu"))


def list_study_names(db: sqlite_utils.Database) -> list[str]:
    """Study names, most recently updated first."""
    return [row[0] for row in db.execute("SELECT name FROM studies ORDER BY updated_at DESC, name").fetchall()]


# --- job detail ----------------------------------------------------------------------------------------------------


def load_job_row(db: sqlite_utils.Database, key: str) -> dict | None:
    """One job with all its columns, its config decoded under `config`, and its studies."""
    row = db.execute("SELECT * FROM jobs WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    cols = [d[0] for d in db.execute("SELECT * FROM jobs LIMIT 0").description]
    job = dict(zip(cols, row))
    job["config"] = json.loads(job["config_json"] or "{}")
    job["studies"] = [r[0] for r in db.execute("SELECT study FROM study_jobs WHERE job_key = ?", (key,)).fetchall()]
    return job


def curve_series(db: sqlite_utils.Database, key: str) -> dict[str, tuple[list[int], list[float]]]:
    """A job's curves as name -> (steps, values)."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for name, step, value in db.execute(
        "SELECT name, step, value FROM metrics WHERE job_key = ? ORDER BY name, step", (key,)
    ).fetchall():
        steps, values = series.setdefault(name, ([], []))
        steps.append(step)
        values.append(value)
    return series


def list_grids(db: sqlite_utils.Database, key: str) -> list[dict]:
    """A generator job's periodic sample grids (artifact kind 'grid'), ordered by step."""
    return list(db.query("SELECT path, step, class_name FROM artifacts WHERE job_key = ? AND kind = 'grid'"
                         " ORDER BY step, path", [key]))


def evaluation_key(db: sqlite_utils.Database, key: str) -> str | None:
    """The job whose per-class metrics belong to `key`: itself, or the evaluate job that depends on it (the one on
    the fold's test split, not the one on an external test set)."""
    if db.execute("SELECT 1 FROM class_metrics WHERE job_key = ? LIMIT 1", (key,)).fetchone():
        return key
    row = db.execute(
        "SELECT d.job_key FROM job_deps d JOIN jobs j ON j.key = d.job_key WHERE d.dep_key = ? AND j.kind = 'evaluate'"
        " ORDER BY json_extract(j.config_json, '$.test_set') IS NOT NULL LIMIT 1", (key,)).fetchone()
    return row[0] if row else None


def dependency_of_kind(db: sqlite_utils.Database, key: str, kind: str) -> str | None:
    """The key of a job's dependency of one kind (e.g. the train_classifier an evaluate job scored), or None."""
    row = db.execute("SELECT d.dep_key FROM job_deps d JOIN jobs j ON j.key = d.dep_key WHERE d.job_key = ?"
                     " AND j.kind = ? LIMIT 1", (key, kind)).fetchone()
    return row[0] if row else None


def class_table(db: sqlite_utils.Database, key: str) -> list[dict]:
    """Per-class precision/recall/F1/AUROC/support of an evaluated job, in recorded order."""
    return list(db.query("SELECT class_name, precision, recall, f1, auroc, support FROM class_metrics"
                         " WHERE job_key = ? ORDER BY rowid", [key]))


def confusion_table(db: sqlite_utils.Database, key: str) -> tuple[list[str], list[list[int]]]:
    """A job's confusion matrix as (classes, rows of counts), classes in class_metrics order when known."""
    classes = [r["class_name"] for r in class_table(db, key)]
    cells = db.execute("SELECT true_class, pred_class, count FROM confusion WHERE job_key = ?", (key,)).fetchall()
    for true_class, pred_class, _ in cells:
        for name in (true_class, pred_class):
            if name not in classes:
                classes.append(name)
    index = {name: i for i, name in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for true_class, pred_class, count in cells:
        matrix[index[true_class]][index[pred_class]] = count
    return classes, matrix


def job_results(db: sqlite_utils.Database, key: str) -> dict[str, float]:
    """A job's final scalar results."""
    return {name: value for name, value in db.execute("SELECT name, value FROM results WHERE job_key = ? ORDER BY name",
                                                      (key,)).fetchall()}


# --- images: gallery and reader study ------------------------------------------------------------------------------


def study_jobs_of_kind(db: sqlite_utils.Database, study: str, kind: str) -> list[dict]:
    """A study's jobs of one kind with decoded configs."""
    rows = db.query("SELECT j.key, j.status, j.config_json FROM jobs j JOIN study_jobs s ON s.job_key = j.key"
                    " WHERE s.study = ? AND j.kind = ? ORDER BY j.created_at, j.key", [study, kind])
    return [dict(key=r["key"], status=r["status"], config=json.loads(r["config_json"] or "{}")) for r in rows]


def study_classes(db: sqlite_utils.Database, study: str) -> list[str]:
    """The study's class names: from its jobs' configs, else from its sample artifacts."""
    for kind in ("prepare_data", "train_generator", "sample", "train_classifier", "evaluate"):
        for job in study_jobs_of_kind(db, study, kind):
            classes = job["config"].get("classes") or job["config"].get("dataset", {}).get("classes")
            if classes:
                return list(classes)
    return [r[0] for r in db.execute(
        "SELECT DISTINCT a.class_name FROM artifacts a JOIN study_jobs s ON s.job_key = a.job_key"
        " WHERE s.study = ? AND a.kind = 'sample' AND a.class_name IS NOT NULL ORDER BY a.class_name", (study,))]


def _generator_name(config: dict) -> str | None:
    """The generator name in a job config (a GeneratorSpec dump or a plain name)."""
    gen = config.get("generator")
    if isinstance(gen, dict):
        return gen.get("name") or gen.get("model")
    return gen


def synthetic_samples(db: sqlite_utils.Database, study: str) -> dict[str, dict[str, list[str]]]:
    """Synthetic sample paths of a study as generator -> class -> [paths relative to the artifact root]."""
    samples: dict[str, dict[str, list[str]]] = {}
    for job in study_jobs_of_kind(db, study, "sample"):
        name = _generator_name(job["config"]) or job["key"][:8]
        for path, class_name in db.execute(
            "SELECT path, class_name FROM artifacts WHERE job_key = ? AND kind = 'sample' ORDER BY class_name, path",
            (job["key"],)).fetchall():
            samples.setdefault(name, {}).setdefault(class_name or "", []).append(path)
    return samples


def real_image_folder(db: sqlite_utils.Database, db_path: str | Path, study: str) -> Path | None:
    """The work folder of the study's prepare_data job (holds images.npy and index.json), if it exists."""
    for job in study_jobs_of_kind(db, study, "prepare_data"):
        folder = artifact_root(db_path) / "jobs" / "prepare_data" / job["key"][:16]
        if (folder / "images.npy").exists():
            return folder
    return None


def reader_study_config(db: sqlite_utils.Database, study: str) -> dict:
    """The study recipe's reader_study section (images_per_class, real_fraction), with defaults."""
    row = db.execute("SELECT recipe_json FROM studies WHERE name = ?", (study,)).fetchone()
    section = (json.loads(row[0]).get("reader_study") if row else None) or {}
    return {"images_per_class": int(section.get("images_per_class", 25)),
            "real_fraction": float(section.get("real_fraction", 0.25))}


# --- study: comparisons, per-class deltas, quality vs utility ------------------------------------------------------


def comparison_rows(db: sqlite_utils.Database, study: str, *, metric: str | None = None,
                    reference: str | None = None, per_class: bool = False) -> list[dict]:
    """A study's comparison rows (overall, or per class), ordered generator, classifier, amount, class."""
    where, params = ["study = ?", "class_name != ''" if per_class else "class_name = ''"], [study]
    if metric:
        where.append("metric = ?")
        params.append(metric)
    if reference:
        where.append("reference = ?")
        params.append(reference)
    return list(db.query("SELECT * FROM comparisons WHERE " + " AND ".join(where)
                         + " ORDER BY generator, classifier, amount, metric, class_name", params))


def comparison_choices(db: sqlite_utils.Database, study: str) -> dict[str, list]:
    """Distinct metrics, references and amounts among a study's overall comparisons."""
    def distinct(column: str) -> list:
        return [r[0] for r in db.execute(
            f"SELECT DISTINCT {column} FROM comparisons WHERE study = ? AND class_name = '' ORDER BY {column}",
            (study,)).fetchall()]
    return {"metrics": distinct("metric"), "references": distinct("reference"), "amounts": distinct("amount")}


def study_analysis_info(db: sqlite_utils.Database, study: str) -> dict | None:
    """The stored analysis summary of a study (n_units, unit, test, correction, alpha, ...), None before the
    analyse job ran."""
    from xaug.store.analysis import load_analysis

    return load_analysis(db, study)


def headline_rows(db: sqlite_utils.Database, study: str, *, metric: str, reference: str = "baseline",
                  per_class: bool = False) -> list[dict]:
    """The study's stored headline (each generator's effect over classifiers and common amounts)."""
    from xaug.store.analysis import load_headline

    return load_headline(db, study, reference=reference, metric=metric, per_class=per_class)


def class_f1_deltas(db: sqlite_utils.Database, study: str, reference: str = "baseline") -> dict[str, dict[str, dict]]:
    """Per-class F1 change versus the reference from the stored headline: generator -> class -> headline row
    (mean, CI, p_adjusted over classifiers and common amounts)."""
    deltas: dict[str, dict[str, dict]] = {}
    for row in headline_rows(db, study, metric="f1", reference=reference, per_class=True):
        deltas.setdefault(row["generator"], {})[row["class_name"]] = row
    return deltas


def quality_vs_utility(db: sqlite_utils.Database, study: str, quality_metric: str = "fid",
                       utility_metric: str = "accuracy", reference: str = "baseline") -> list[dict]:
    """Per generator, its overall image quality against the training and the held-out images (`quality`,
    `quality_heldout`; None when absent), its near-copy rate (`near_copies`: pixel-space memorised fraction of
    training images, None when not recorded), which of those were not meaningful (`not_meaningful`, names of those
    keys: too few images), and its stored headline
    utility (`utility`, `ci_low`, `ci_high`, `p_adjusted`: change in `utility_metric` vs `reference`).

    Quality is `load_quality_summary`'s mean over units, the one place it is averaged (the report shows the same)."""
    from xaug.store.analysis import load_quality_summary

    overall = {}
    for q in load_quality_summary(db, study):
        if q["class_name"] == "" and (q["metric"] != "memorised_fraction" or q["features"] == "pixels"):
            overall.setdefault((q["generator"], q["metric"], q["reference"]), q)
    headline = {r["generator"]: r for r in headline_rows(db, study, metric=utility_metric, reference=reference)
                if r["mean"] is not None}
    rows = []
    for generator in sorted({g for g, _, _ in overall} & set(headline)):
        values = {name: overall.get((generator, metric, ref)) for name, metric, ref in (
            ("quality", quality_metric, "train"), ("quality_heldout", quality_metric, "heldout"),
            ("near_copies", "memorised_fraction", "train"))}
        effect = headline[generator]
        rows.append({"generator": generator, **{k: q and q["value"] for k, q in values.items()},
                     "not_meaningful": [k for k, q in values.items() if q and not q["meaningful"]],
                     "utility": effect["mean"], "ci_low": effect["ci_low"], "ci_high": effect["ci_high"],
                     "p_adjusted": effect["p_adjusted"], "n": effect["n"]})
    return rows


def list_correlations(db: sqlite_utils.Database, study: str) -> list[dict]:
    """The study's quality-vs-utility correlations."""
    return list(db.query("SELECT quality_metric, utility_metric, method, n, r, ci_low, ci_high, p_value"
                         " FROM correlations WHERE study = ? ORDER BY quality_metric, utility_metric, method", [study]))


# --- export ---------------------------------------------------------------------------------------------------------

EXPORT_COLUMNS = ["generator", "classifier", "amount", "reference", "metric", "class_name", "n", "unit", "mean",
                  "ci_low", "ci_high", "p_value", "p_adjusted", "test", "correction"]


def export_comparisons(db: sqlite_utils.Database, db_path: str | Path, study: str) -> list[Path]:
    """Write the study's comparisons (overall and per class) as CSV, Markdown and LaTeX under
    `<artifact root>/exports/` with xaug.store.export; returns the paths."""
    from xaug.store.export import write_table

    info = study_analysis_info(db, study) or {}
    unit = info.get("unit", "no stored analysis")
    label = unit.split("unit = ", 1)[-1]
    rows = [{**r, "unit": label} for r in comparison_rows(db, study) + comparison_rows(db, study, per_class=True)]
    confidence = f"{(1 - info.get('alpha', 0.05)) * 100:.0f}%"
    return write_table(artifact_root(db_path) / "exports", f"{study}-comparisons", EXPORT_COLUMNS, rows,
                       caption=f"Study {study}: change versus the reference arm (mean, {confidence} CI, paired "
                               f"test); {unit}")
