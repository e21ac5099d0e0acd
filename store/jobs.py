"""The durable job queue: jobs, their dependencies, and their state as workers run them.

Every state change of the queue is one small function here, and each status it writes is the one the state
machine (`xaug.store.job_states`, with its diagram) gives for that event. Changes that must not race (submitting a
study, claiming the next job, finishing one, taking the engine lock) run inside `BEGIN IMMEDIATE` so that two
processes never claim the same job. A queued job whose dependency failed or was cancelled is stored as *blocked*;
it is queued again when that dependency is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

import sqlite_utils
from xaug.store import job_states as states
from xaug.store.db import now

FINISHED = states.FINISHED

_RUNNABLE_SQL = """
SELECT j.* FROM jobs j
WHERE j.status = 'queued'
  AND NOT EXISTS (SELECT 1 FROM job_deps d JOIN jobs p ON p.key = d.dep_key
                  WHERE d.job_key = j.key AND p.status != 'done')
ORDER BY j.priority DESC, j.rowid
LIMIT ?
"""


@contextmanager
def immediate(db: sqlite_utils.Database) -> Iterator[None]:
    """A write transaction taken up front (BEGIN IMMEDIATE): commit on success, roll back on error."""
    conn = db.conn
    if conn.in_transaction:
        conn.commit()
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def load_job(db: sqlite_utils.Database, key: str) -> dict | None:
    """One job row with its config decoded under `config`, or None."""
    rows = list(db["jobs"].rows_where("key = ?", [key]))
    if not rows:
        return None
    row = rows[0]
    row["config"] = json.loads(row["config_json"])
    return row


def update_job_progress(
    db: sqlite_utils.Database, key: str, done: float, total: float, message: str = "", eta_s: float | None = None
) -> None:
    """Record how far a running job is, and its heartbeat."""
    with db.conn:
        db.conn.execute(
            "UPDATE jobs SET progress = ?, progress_total = ?, message = ?, eta_s = ?, heartbeat_at = ? WHERE key = ?",
            (float(done), float(total), message, eta_s, now(), key),
        )


def is_cancel_requested(db: sqlite_utils.Database, key: str) -> bool:
    """Whether someone asked this job to stop."""
    row = db.execute("SELECT cancel_requested FROM jobs WHERE key = ?", (key,)).fetchone()
    return bool(row and row[0])


# --- submitting -------------------------------------------------------------------------------------------------

def submit_study(db: sqlite_utils.Database, name: str, recipe_path: str | None, recipe_yaml: str, recipe: dict,
                 jobs: Iterable) -> dict[str, int]:
    """Record a study and enqueue its planned jobs in one transaction; returns counts new/reused/requeued.

    Jobs are inserted by key, so a job already in the store is reused: done jobs stay done, queued and running
    ones are left alone, failed or cancelled ones are queued again with their attempts reset. Queued jobs that
    no study references any more (the recipe dropped them) are cancelled.
    """
    jobs = list(jobs)
    stamp = now()
    keys = [job.key for job in jobs]
    with immediate(db):
        conn = db.conn
        existing = _statuses(conn, keys)
        conn.execute(
            "INSERT INTO studies (name, recipe_path, recipe_yaml, recipe_json, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET recipe_path = excluded.recipe_path,"
            " recipe_yaml = excluded.recipe_yaml, recipe_json = excluded.recipe_json, updated_at = excluded.updated_at",
            (name, recipe_path, recipe_yaml, json.dumps(recipe, sort_keys=True), stamp, stamp),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO jobs (key, kind, label, config_json, priority, max_attempts, gpus_needed,"
            " gpu_memory_mb, memory_group, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(j.key, j.kind, j.label, json.dumps(j.config, sort_keys=True), j.priority, j.max_attempts,
              j.gpus_needed, j.gpu_memory_mb, j.memory_group, stamp) for j in jobs],
        )
        # A key names content, not places: a moved dataset keeps the key but changes the paths in the config, so
        # jobs that have yet to run read the new paths (and the recipe's current GPU memory settings).
        conn.executemany(
            "UPDATE jobs SET config_json = ?, gpu_memory_mb = ?, memory_group = ? WHERE key = ?"
            " AND status IN ('queued', 'blocked', 'failed', 'cancelled')",
            [(json.dumps(j.config, sort_keys=True), j.gpu_memory_mb, j.memory_group, j.key) for j in jobs
             if j.key in existing],
        )
        requeue = [k for k in keys if existing.get(k) in states.sources("retry")]
        conn.executemany(
            "UPDATE jobs SET status = ?, attempts = 0, cancel_requested = 0, error = NULL WHERE key = ?",
            [(states.target("retry"), k) for k in requeue],
        )
        conn.executemany("INSERT OR IGNORE INTO job_deps (job_key, dep_key) VALUES (?, ?)",
                         [(j.key, d) for j in jobs for d in j.deps])
        conn.execute("DELETE FROM study_jobs WHERE study = ?", (name,))
        conn.executemany("INSERT OR IGNORE INTO study_jobs (study, job_key) VALUES (?, ?)", [(name, k) for k in keys])
        conn.execute(
            f"UPDATE jobs SET status = ?, ended_at = ?, error = 'no longer part of any study'"
            f" WHERE status IN {_marks('drop')} AND key NOT IN (SELECT job_key FROM study_jobs)",
            (states.target("drop"), stamp, *states.sources("drop")),
        )
        _propagate_blocks(conn)
    reused = sum(1 for k in keys if existing.get(k) == "done")
    return {"jobs": len(keys), "new": len(keys) - len(existing), "reused": reused, "requeued": len(requeue),
            "pending": len(existing) - reused - len(requeue)}


def _marks(event: str) -> str:
    """'(?, ?)': placeholders for the statuses an event may start from."""
    return "(" + ",".join("?" * len(states.sources(event))) + ")"


def refresh_blocked(db: sqlite_utils.Database) -> None:
    """Store as blocked every queued job downstream of a failed or cancelled one (and queue the others again)."""
    _propagate_blocks(db.conn)


def _propagate_blocks(conn) -> None:
    """Block queued jobs downstream of a failed, cancelled or blocked job; unblock those whose upstream is clear.

    Each pass moves one level of the DAG, so it repeats until nothing changes.
    """
    stopped = ",".join("?" * len(states.STOPS_DEPENDENTS))
    upstream_stopped = (f"EXISTS (SELECT 1 FROM job_deps d JOIN jobs p ON p.key = d.dep_key"
                        f" WHERE d.job_key = jobs.key AND p.status IN ({stopped}))")
    for event, condition in (("block", upstream_stopped), ("unblock", "NOT " + upstream_stopped)):
        while conn.execute(f"UPDATE jobs SET status = ? WHERE status IN {_marks(event)} AND {condition}",
                           (states.target(event), *states.sources(event), *states.STOPS_DEPENDENTS)).rowcount:
            pass


def job_statuses(db: sqlite_utils.Database, keys: Iterable[str]) -> dict[str, str]:
    """Status of each of these keys that is already in the store."""
    return _statuses(db.conn, list(keys))


def _statuses(conn, keys: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(conn.execute(f"SELECT key, status FROM jobs WHERE key IN ({marks})", chunk).fetchall())
    return found


# --- claiming and finishing ---------------------------------------------------------------------------------------

def runnable_jobs(db: sqlite_utils.Database, limit: int = 50) -> list[dict]:
    """Queued jobs whose dependencies are all done, highest priority first, then oldest."""
    return [dict(row) for row in db.query(_RUNNABLE_SQL, [limit])]


def claim_job(db: sqlite_utils.Database, fits: Callable[[dict], list[int] | None], *, host: str,
              log_path_for: Callable[[dict], str], limit: int = 500) -> dict | None:
    """Atomically take the first runnable job that `fits` (which returns its GPU ids, [] for CPU, None if not).

    The job becomes `running` with host, GPUs, log path and start time; the worker's pid is set when it starts.
    Returns the claimed row (with `gpu_ids`), or None when nothing fits or the queue is paused.
    """
    with immediate(db):
        if _paused(db.conn):
            return None
        cursor = db.conn.execute(_RUNNABLE_SQL, (limit,))
        names = [column[0] for column in cursor.description]
        for row in cursor.fetchall():
            job = dict(zip(names, row))
            gpu_ids = fits(job)
            if gpu_ids is None:
                continue
            log_path = log_path_for(job)
            status = states.transition(job["status"], "claim")
            db.conn.execute(
                "UPDATE jobs SET status = ?, pid = ?, host = ?, gpus = ?, log_path = ?, started_at = ?,"
                " heartbeat_at = ?, ended_at = NULL, exit_code = NULL, progress = 0, progress_total = 0,"
                " message = 'starting', eta_s = NULL WHERE key = ? AND status = ?",
                (status, None, host, ",".join(map(str, gpu_ids)), log_path, now(), now(), job["key"], job["status"]),
            )
            job.update(status=status, host=host, gpus=",".join(map(str, gpu_ids)), log_path=log_path,
                       gpu_ids=gpu_ids, config=json.loads(job["config_json"]))
            return job
    return None


def set_job_pid(db: sqlite_utils.Database, key: str, pid: int) -> None:
    """Record the pid of the worker process running a job."""
    with db.conn:
        db.conn.execute("UPDATE jobs SET pid = ?, heartbeat_at = ? WHERE key = ?", (pid, now(), key))


def mark_job_done(db: sqlite_utils.Database, key: str) -> str:
    """A running job finished: done, progress full, no error. Returns the status."""
    with immediate(db):
        row = _status_row(db.conn, key)
        if row is None or row["status"] not in states.sources("finish"):
            return row["status"] if row else "missing"
        db.conn.execute(
            "UPDATE jobs SET status = ?, ended_at = ?, error = NULL, message = 'done', eta_s = 0,"
            " progress = CASE WHEN progress_total > 0 THEN progress_total ELSE 1 END,"
            " progress_total = CASE WHEN progress_total > 0 THEN progress_total ELSE 1 END WHERE key = ?",
            (states.target("finish"), now(), key),
        )
    return states.target("finish")


def mark_job_failed(db: sqlite_utils.Database, key: str, error: str, exit_code: int | None = None, *,
                    retryable: bool = True) -> str:
    """A running job's attempt failed: attempts + 1; queued again while attempts are left and the failure is
    `retryable` (transient), else failed (its dependents become blocked). Returns the status."""
    with immediate(db):
        row = _status_row(db.conn, key)
        if row is None or row["status"] != states.RUNNING:
            return row["status"] if row else "missing"
        event = states.after_failure(cancel_requested=bool(row["cancel_requested"]), attempts=row["attempts"] + 1,
                                     max_attempts=row["max_attempts"], retryable=retryable)
        db.conn.execute(
            "UPDATE jobs SET attempts = attempts + 1, error = ?, exit_code = COALESCE(?, exit_code), ended_at = ?,"
            " status = ?, pid = NULL WHERE key = ?",
            (error, exit_code, now(), states.transition(row["status"], event), key),
        )
        _propagate_blocks(db.conn)
    return states.target(event)


def mark_job_interrupted(db: sqlite_utils.Database, key: str, reason: str = "interrupted") -> str:
    """A running job stopped at a stop check: cancelled if a cancel was requested, else queued to resume (no
    attempt counted). Returns the status."""
    with immediate(db):
        row = _status_row(db.conn, key)
        if row is None or row["status"] != states.RUNNING:
            return row["status"] if row else "missing"
        event = states.after_interrupt(cancel_requested=bool(row["cancel_requested"]))
        status = states.transition(row["status"], event)
        db.conn.execute(
            "UPDATE jobs SET status = ?, message = ?, ended_at = ?, pid = NULL, eta_s = NULL WHERE key = ?",
            (status, "cancelled" if status == states.CANCELLED else reason, now(), key),
        )
        _propagate_blocks(db.conn)
    return status


def _status_row(conn, key: str) -> dict | None:
    """status, attempts, max_attempts and cancel_requested of a job."""
    row = conn.execute("SELECT status, attempts, max_attempts, cancel_requested FROM jobs WHERE key = ?",
                       (key,)).fetchone()
    return None if row is None else dict(zip(("status", "attempts", "max_attempts", "cancel_requested"), row))


def record_job_exit(db: sqlite_utils.Database, key: str, exit_code: int) -> None:
    """Record the exit status of the worker process that ran a job."""
    with db.conn:
        db.conn.execute("UPDATE jobs SET exit_code = ?, ended_at = COALESCE(ended_at, ?) WHERE key = ?",
                        (exit_code, now(), key))


def heartbeat_jobs(db: sqlite_utils.Database, keys: Iterable[str]) -> None:
    """Mark running jobs as alive (the engine does this for the workers it watches)."""
    stamp = now()
    with db.conn:
        db.conn.executemany("UPDATE jobs SET heartbeat_at = ? WHERE key = ? AND status = 'running'",
                            [(stamp, k) for k in keys])


def running_jobs(db: sqlite_utils.Database, host: str | None = None) -> list[dict]:
    """Jobs marked running (optionally on one host)."""
    if host is None:
        return [dict(r) for r in db.query("SELECT * FROM jobs WHERE status = 'running' ORDER BY rowid")]
    return [dict(r) for r in db.query("SELECT * FROM jobs WHERE status = 'running' AND host = ? ORDER BY rowid",
                                      [host])]


# --- user commands ------------------------------------------------------------------------------------------------

def cancel_job(db: sqlite_utils.Database, key: str) -> str:
    """Cancel a job: queued -> cancelled now; running -> cancel requested (it checkpoints and stops).

    Returns what happened: 'cancelled', 'cancel_requested' or the unchanged status of a finished job.
    """
    with immediate(db):
        row = _status_row(db.conn, key)
        if row is None:
            return "missing"
        if row["status"] in states.sources("cancel"):
            status = states.transition(row["status"], "cancel")
            db.conn.execute("UPDATE jobs SET status = ?, ended_at = ?, message = 'cancelled' WHERE key = ?",
                            (status, now(), key))
            _propagate_blocks(db.conn)
            return status
        if row["status"] == states.RUNNING:
            db.conn.execute("UPDATE jobs SET cancel_requested = 1, message = 'cancelling' WHERE key = ?", (key,))
            return "cancel_requested"
        return row["status"]


def retry_job(db: sqlite_utils.Database, key: str) -> bool:
    """Queue a failed or cancelled job again with its attempts reset (its blocked dependents are queued again
    too); False if it was in another state."""
    with immediate(db):
        cur = db.conn.execute(
            f"UPDATE jobs SET status = ?, attempts = 0, cancel_requested = 0, error = NULL, message = NULL,"
            f" ended_at = NULL WHERE key = ? AND status IN {_marks('retry')}",
            (states.target("retry"), key, *states.sources("retry")))
        _propagate_blocks(db.conn)
    return cur.rowcount == 1


def set_job_priority(db: sqlite_utils.Database, key: str, priority: int) -> bool:
    """Change a job's priority (higher runs first); False if there is no such job."""
    with db.conn:
        cur = db.conn.execute("UPDATE jobs SET priority = ? WHERE key = ?", (int(priority), key))
    return cur.rowcount == 1


def set_paused(db: sqlite_utils.Database, paused: bool) -> None:
    """Pause (no new jobs start; running ones continue) or resume the queue."""
    with db.conn:
        db.conn.execute("INSERT OR REPLACE INTO queue_state (key, value) VALUES ('paused', ?)",
                        ("1" if paused else "0",))


def is_paused(db: sqlite_utils.Database) -> bool:
    """Whether the queue is paused."""
    return _paused(db.conn)


def _paused(conn) -> bool:
    row = conn.execute("SELECT value FROM queue_state WHERE key = 'paused'").fetchone()
    return bool(row and row[0] == "1")


def find_job_keys(db: sqlite_utils.Database, prefix: str) -> list[str]:
    """Keys that start with `prefix` (at most 10)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return [r[0] for r in db.execute("SELECT key FROM jobs WHERE key LIKE ? ESCAPE '\\' ORDER BY key LIMIT 10",
                                     (escaped + "%",)).fetchall()]


# --- listing --------------------------------------------------------------------------------------------------------

QUEUE_ORDER = (states.RUNNING, states.QUEUED, states.BLOCKED, states.FAILED, states.CANCELLED, states.DONE)
"""How a person reads a queue: what runs now, what runs next, what went wrong, what finished."""

_ORDER_BY = {
    "submitted": "j.rowid",
    # running; queued and blocked by priority, then submission; failed, cancelled, done: most recent first
    "queue": ("CASE j.status " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(QUEUE_ORDER)) + " END,"
              " CASE WHEN j.status IN ('queued', 'blocked') THEN -j.priority END,"
              " CASE WHEN j.status IN ('failed', 'cancelled', 'done') THEN j.ended_at END DESC, j.rowid"),
}


def list_jobs(db: sqlite_utils.Database, study: str | None = None, status: str | None = None, *,
              order: str = "submitted", with_deps: bool = True, fields: tuple[str, ...] | None = None,
              limit: int | None = None) -> list[dict]:
    """Jobs (optionally of one study and/or state), each with `studies` (comma-joined study names) and, `with_deps`, `deps` and `blocked_by` (for a blocked job, the failed or cancelled job upstream of it).

    `order` 'submitted' is submission order; 'queue' is QUEUE_ORDER (queued jobs by priority, then submission;
    finished ones most recent first), the order `xaug-tui` shows. `fields` reads only these columns (and key,
    status) instead of all: a live view of 10,000 jobs reads twice as fast with the dozen it shows. `limit` reads only the first
    jobs in this order (a screenful, to show something at once).
    """
    unknown = set(fields or ()) - set(_JOB_COLUMNS) - {"studies"}
    if unknown:
        raise ValueError(f"jobs have no column(s) {sorted(unknown)}; they have {', '.join(_JOB_COLUMNS)}")
    columns = "j.*" if fields is None else ", ".join(
        f"j.{c}" for c in dict.fromkeys(("key", "status", *fields)) if c != "studies")
    where, params = [], []
    if study is not None:
        where.append("j.key IN (SELECT job_key FROM study_jobs WHERE study = ?)")
        params.append(study)
    if status is not None and not with_deps:  # blocked_by needs every job's status: filter afterwards then
        where.append("j.status = ?")
        params.append(status)
    cursor = db.execute(
        f"SELECT {columns}, (SELECT group_concat(s.study, ',') FROM study_jobs s WHERE s.job_key = j.key)"
        " AS studies FROM jobs j" + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY {_ORDER_BY[order]}" + ("" if limit is None else f" LIMIT {int(limit)}"), params)
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, values)) for values in cursor.fetchall()]
    if not with_deps:
        return rows
    deps = _deps_of(db, [r["key"] for r in rows], whole=study is None)
    status_of = {r["key"]: r["status"] for r in rows}
    missing = {d for ds in deps.values() for d in ds if d not in status_of}
    status_of.update(_statuses(db.conn, sorted(missing)))
    blocked = _blocked(deps, status_of)
    for row in rows:
        row["deps"] = deps.get(row["key"], [])
        row["blocked_by"] = blocked.get(row["key"]) if row["status"] == states.BLOCKED else None
    if status is not None:
        return [r for r in rows if r["status"] == status]
    return rows


def queue_shape(db: sqlite_utils.Database) -> tuple:
    """A cheap summary (one scan in SQLite, no rows to Python) that changes when the queue changes other than by
    running jobs' progress: jobs added or removed, a status, a priority, a cancel request, a start or an end. A
    live view re-reads every job when it changes, else only the running ones."""
    totals = db.execute("SELECT count(*), max(rowid), total(rowid * priority), total(cancel_requested),"
                        " max(started_at), max(ended_at) FROM jobs").fetchone()
    return tuple(totals) + tuple(db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())


_JOB_COLUMNS = ("key", "kind", "label", "status", "priority", "attempts", "max_attempts", "gpus_needed", "progress",
                "progress_total", "message", "eta_s", "pid", "host", "gpus", "log_path", "created_at", "started_at",
                "ended_at", "heartbeat_at", "exit_code", "error", "cancel_requested", "slurm_job_id", "slurm_state",
                "config_json", "journal_seq", "gpu_memory_mb", "memory_group", "peak_gpu_memory_mb")
"""The columns `list_jobs` may be asked for."""


def _deps_of(db, keys: list[str], whole: bool) -> dict[str, list[str]]:
    deps: dict[str, list[str]] = {}
    if whole:
        pairs = db.execute("SELECT job_key, dep_key FROM job_deps").fetchall()
    else:
        pairs = []
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            pairs += db.execute(f"SELECT job_key, dep_key FROM job_deps WHERE job_key IN ({marks})", chunk).fetchall()
    for job_key, dep_key in pairs:
        deps.setdefault(job_key, []).append(dep_key)
    return deps


def _blocked(deps: dict[str, list[str]], status_of: dict[str, str]) -> dict[str, str]:
    """For each job, a failed/cancelled job upstream of it (depth-first, memoised)."""
    memo: dict[str, str | None] = {}

    def culprit(key: str) -> str | None:
        if key in memo:
            return memo[key]
        memo[key] = None
        found = None
        for dep in deps.get(key, []):
            if status_of.get(dep) in (states.FAILED, states.CANCELLED):
                found = dep
            else:
                found = culprit(dep)
            if found:
                break
        memo[key] = found
        return found

    return {k: c for k in status_of if (c := culprit(k))}


def study_counts(db: sqlite_utils.Database, study: str | None) -> dict[str, int]:
    """How many of a study's jobs (every job, for None) are queued, running, done, failed, cancelled and blocked,
    and their `total`."""
    counts = dict.fromkeys(states.STATUSES, 0)
    if study is None:
        found = db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
    else:
        found = db.execute("SELECT j.status, count(*) FROM jobs j JOIN study_jobs s ON s.job_key = j.key"
                           " WHERE s.study = ? GROUP BY j.status", (study,)).fetchall()
    for status, n in found:
        counts[status] = n
    counts["total"] = sum(counts.values())
    return counts


def study_finished(db: sqlite_utils.Database, study: str) -> bool:
    """True when no job of the study can still run: each is done, failed, cancelled or blocked."""
    counts = study_counts(db, study)
    return counts["queued"] == 0 and counts["running"] == 0


def load_job_deps(db: sqlite_utils.Database, key: str, *, dependents: bool = False) -> dict[str, dict]:
    """The job rows (config decoded) of a job's dependencies, by key; with `dependents`, of the jobs that depend
    on it instead."""
    sql = ("SELECT job_key FROM job_deps WHERE dep_key = ?" if dependents
           else "SELECT dep_key FROM job_deps WHERE job_key = ?")
    out = {}
    for (other,) in db.execute(sql, (key,)).fetchall():
        row = load_job(db, other)
        if row is not None:
            out[other] = row
    return out


def load_fold_evaluation(db: sqlite_utils.Database, train_key: str) -> dict | None:
    """The evaluate job (row, config decoded) that scores a train_classifier job on its fold's test split, before
    one on an external test set; None before there is one."""
    evaluations = sorted((job["config"].get("test_set", "test") != "test", key, job)
                         for key, job in load_job_deps(db, train_key, dependents=True).items()
                         if job["kind"] == "evaluate")
    return evaluations[0][-1] if evaluations else None


def job_studies(db: sqlite_utils.Database, key: str) -> list[str]:
    """Names of the studies a job belongs to."""
    return [r[0] for r in db.execute("SELECT study FROM study_jobs WHERE job_key = ? ORDER BY study", (key,))]


# --- the engine lock and GPU statistics -------------------------------------------------------------------------------

def load_engine(db: sqlite_utils.Database) -> dict | None:
    """The engine row (pid, host, started_at, heartbeat_at) or None when no engine holds the store."""
    row = db.execute("SELECT pid, host, started_at, heartbeat_at FROM engine WHERE id = 1").fetchone()
    return None if row is None else dict(zip(("pid", "host", "started_at", "heartbeat_at"), row))


def claim_engine(db: sqlite_utils.Database, pid: int, host: str, holder_alive: Callable[[dict], bool]) -> dict | None:
    """Take the engine lock unless a live engine holds it; returns that engine's row when refused, else None."""
    with immediate(db):
        row = load_engine(db)
        if row is not None and not (row["pid"] == pid and row["host"] == host) and holder_alive(row):
            return row
        stamp = now()
        db.conn.execute("INSERT OR REPLACE INTO engine (id, pid, host, started_at, heartbeat_at)"
                        " VALUES (1, ?, ?, ?, ?)", (pid, host, stamp, stamp))
    return None


def heartbeat_engine(db: sqlite_utils.Database, pid: int, host: str) -> bool:
    """Refresh the engine's heartbeat; False if this engine no longer holds the lock."""
    with db.conn:
        cur = db.conn.execute("UPDATE engine SET heartbeat_at = ? WHERE id = 1 AND pid = ? AND host = ?",
                              (now(), pid, host))
    return cur.rowcount == 1


def release_engine(db: sqlite_utils.Database, pid: int, host: str) -> None:
    """Give the engine lock up (only if this engine holds it)."""
    with db.conn:
        db.conn.execute("DELETE FROM engine WHERE id = 1 AND pid = ? AND host = ?", (pid, host))


def record_gpu_stats(db: sqlite_utils.Database, rows: Iterable[dict]) -> None:
    """Replace the latest utilisation/memory reading of each GPU."""
    stamp = now()
    with db.conn:
        db.conn.executemany(
            "INSERT OR REPLACE INTO gpu_stats (gpu, name, utilization, memory_used_mb, memory_total_mb, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(r["gpu"], r.get("name"), r.get("utilization"), r.get("memory_used_mb"), r.get("memory_total_mb"), stamp)
             for r in rows],
        )


def load_gpu_stats(db: sqlite_utils.Database) -> list[dict]:
    """The latest reading of each GPU."""
    return [dict(r) for r in db.query("SELECT * FROM gpu_stats ORDER BY gpu")]


def record_peak_gpu_memory(db: sqlite_utils.Database, key: str, peak_mb: float) -> None:
    """Record the peak GPU memory (MiB) a job's worker measured (the scheduler estimates later jobs of its group
    from it)."""
    with db.conn:
        db.conn.execute("UPDATE jobs SET peak_gpu_memory_mb = ? WHERE key = ?", (float(peak_mb), key))


def measured_gpu_memory(db: sqlite_utils.Database) -> dict[str, float]:
    """The largest peak GPU memory (MiB) measured on a done job of each memory group."""
    rows = db.execute("SELECT memory_group, MAX(peak_gpu_memory_mb) FROM jobs WHERE status = 'done'"
                      " AND memory_group IS NOT NULL AND peak_gpu_memory_mb IS NOT NULL GROUP BY memory_group")
    return {group: float(peak) for group, peak in rows.fetchall()}


# --- job configs ------------------------------------------------------------------------------------------------

def classifier_name(classifier) -> str | None:
    """A job config's classifier: a ClassifierSpec dump (name, else model) or already a name."""
    if isinstance(classifier, Mapping):
        return classifier.get("name") or classifier.get("model")
    return classifier


def generator_name(generator) -> str | None:
    """A job config's generator: a GeneratorSpec dump (its name), a name, or None for real-only arms."""
    if isinstance(generator, Mapping):
        return generator.get("name")
    return generator


def study_jobs_of_kind(db: sqlite_utils.Database, study: str, kind: str, status: str | None = "done") -> list[tuple]:
    """(key, config dict) of a study's jobs of one kind, optionally only with one status."""
    sql = ("SELECT j.key, j.config_json FROM jobs j JOIN study_jobs s ON s.job_key = j.key"
           " WHERE s.study = ? AND j.kind = ?")
    params: list = [study, kind]
    if status is not None:
        sql += " AND j.status = ?"
        params.append(status)
    return [(key, json.loads(cfg)) for key, cfg in db.execute(sql + " ORDER BY j.key", params).fetchall()]
