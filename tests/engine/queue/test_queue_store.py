"""The durable queue in the store: submit/reuse, claiming order, cancel, retry, pause, blocked jobs, the lock."""

from __future__ import annotations

import os
import stat

import pytest
from queue_helpers import fake, submit
from xaug.store import jobs as q


def _claim(db, fits=lambda job: []):
    return q.claim_job(db, fits, host="h", log_path_for=lambda j: f"/tmp/{j['key'][:8]}.log")


def test_submit_reuses_done_jobs_and_adds_only_new_ones(qdb):
    a = fake("a")
    b = fake("b", [a])
    counts = submit(qdb, [a, b])
    assert counts == {"jobs": 2, "new": 2, "reused": 0, "requeued": 0, "pending": 0}
    assert _claim(qdb)["key"] == a.key
    q.mark_job_done(qdb, a.key)
    c = fake("c", [a])
    counts = submit(qdb, [a, b, c])
    assert counts["new"] == 1 and counts["reused"] == 1 and counts["pending"] == 1
    assert q.load_job(qdb, a.key)["status"] == "done"
    assert {r["key"] for r in q.list_jobs(qdb, study="s")} == {a.key, b.key, c.key}


def test_resubmission_drops_jobs_the_recipe_no_longer_has(qdb):
    a, b = fake("a"), fake("b")
    submit(qdb, [a, b])
    submit(qdb, [a])
    assert q.load_job(qdb, b.key)["status"] == "cancelled"
    assert [r["key"] for r in q.list_jobs(qdb, study="s")] == [a.key]


def test_claim_respects_dependencies_then_priority_then_age(qdb):
    a = fake("a")
    b = fake("b", [a], priority=10)
    c = fake("c")
    d = fake("d", priority=5)
    submit(qdb, [a, b, c, d])
    first = _claim(qdb)
    assert first["key"] == d.key and first["status"] == "running"
    assert q.load_job(qdb, d.key)["status"] == "running"
    assert _claim(qdb)["key"] == a.key  # b has the highest priority but waits for a
    assert _claim(qdb)["key"] == c.key
    assert _claim(qdb) is None
    q.mark_job_done(qdb, a.key)
    assert _claim(qdb)["key"] == b.key


def test_claim_skips_jobs_that_do_not_fit(qdb):
    big = fake("big", gpus=2, priority=1)
    small = fake("small")
    submit(qdb, [big, small])
    job = _claim(qdb, fits=lambda j: None if j["gpus_needed"] > 0 else [])
    assert job["key"] == small.key
    assert q.load_job(qdb, big.key)["status"] == "queued"


def test_pause_stops_claims_until_resumed(qdb):
    submit(qdb, [fake("a")])
    q.set_paused(qdb, True)
    assert q.is_paused(qdb) and _claim(qdb) is None
    q.set_paused(qdb, False)
    assert _claim(qdb) is not None


def test_cancel_queued_and_running(qdb):
    a, b = fake("a"), fake("b")
    submit(qdb, [a, b])
    running = _claim(qdb)
    other = b.key if running["key"] == a.key else a.key
    assert q.cancel_job(qdb, other) == "cancelled"
    assert q.cancel_job(qdb, running["key"]) == "cancel_requested"
    assert q.is_cancel_requested(qdb, running["key"])
    assert q.mark_job_interrupted(qdb, running["key"]) == "cancelled"


def test_failure_requeues_until_max_attempts_then_blocks_dependents(qdb):
    a = fake("a", max_attempts=2)
    b = fake("b", [a])
    submit(qdb, [a, b])
    _claim(qdb)
    assert q.mark_job_failed(qdb, a.key, "ValueError: x", 1) == "queued"
    _claim(qdb)
    assert q.mark_job_failed(qdb, a.key, "ValueError: y", 1) == "failed"
    row = q.load_job(qdb, a.key)
    assert row["attempts"] == 2 and row["error"] == "ValueError: y"
    blocked = q.list_jobs(qdb, study="s", status="blocked")
    assert [r["key"] for r in blocked] == [b.key] and blocked[0]["blocked_by"] == a.key
    assert q.load_job(qdb, b.key)["status"] == "blocked"  # stored, not only computed for display
    assert q.study_finished(qdb, "s")
    assert q.study_counts(qdb, "s")["blocked"] == 1
    assert q.retry_job(qdb, a.key)
    assert q.load_job(qdb, a.key)["attempts"] == 0
    assert q.load_job(qdb, b.key)["status"] == "queued"
    assert not q.study_finished(qdb, "s")
    assert not q.retry_job(qdb, b.key)  # queued, nothing to retry


def test_blocking_reaches_every_level_downstream_and_cancel_blocks_too(qdb):
    a = fake("a")
    b = fake("b", [a])
    c = fake("c", [b])
    other = fake("other")
    submit(qdb, [a, b, c, other])
    assert q.cancel_job(qdb, a.key) == "cancelled"
    assert [q.load_job(qdb, j.key)["status"] for j in (b, c, other)] == ["blocked", "blocked", "queued"]
    assert _claim(qdb)["key"] == other.key and _claim(qdb) is None  # blocked jobs are never claimed
    assert q.cancel_job(qdb, c.key) == "cancelled"  # a blocked job can be cancelled
    submit(qdb, [a, b, c, other])  # submitting again queues cancelled jobs and unblocks their dependents
    assert [q.load_job(qdb, j.key)["status"] for j in (a, b, c)] == ["queued", "queued", "queued"]


def test_failure_that_retrying_cannot_heal_fails_at_the_first_attempt(qdb):
    a = fake("a", max_attempts=3)
    submit(qdb, [a])
    _claim(qdb)
    assert q.mark_job_failed(qdb, a.key, "DataError: x.png is not an image", 1, retryable=False) == "failed"
    row = q.load_job(qdb, a.key)
    assert row["attempts"] == 1 and row["error"] == "DataError: x.png is not an image"


def test_finishing_a_job_that_is_not_running_changes_nothing(qdb):
    a = fake("a")
    submit(qdb, [a])
    assert q.mark_job_done(qdb, a.key) == "queued"
    assert q.mark_job_failed(qdb, a.key, "late report", 1) == "queued"
    assert q.load_job(qdb, a.key)["attempts"] == 0


def test_state_machine_allows_only_its_transitions():
    from xaug.store import job_states as states

    assert states.transition("queued", "claim") == "running"
    assert states.transition("blocked", "unblock") == "queued"
    with pytest.raises(states.TransitionError, match="a done job cannot 'claim'"):
        states.transition("done", "claim")
    with pytest.raises(states.TransitionError, match="unknown queue event"):
        states.transition("queued", "explode")
    assert {target for _, target in states.TRANSITIONS.values()} <= set(states.STATUSES)
    assert states.after_failure(cancel_requested=False, attempts=1, max_attempts=3, retryable=True) == "retry_later"
    assert states.after_failure(cancel_requested=False, attempts=1, max_attempts=3, retryable=False) == "fail"
    assert states.after_failure(cancel_requested=False, attempts=3, max_attempts=3, retryable=True) == "fail"
    assert states.after_failure(cancel_requested=True, attempts=1, max_attempts=3, retryable=True) == "stop_cancelled"


def test_migration_blocks_dependents_of_jobs_that_failed_before_it(tmp_path):
    import sqlite3

    import sqlite_utils
    from xaug.store import open_store
    from xaug.store.migrations import migrations

    old = sqlite_utils.Database(sqlite3.connect(tmp_path / "old.db"))
    migrations.apply(old, stop_before="m005_queue_blocked_status")
    a, b = fake("a"), fake("b", [fake("a")])
    # The rows as a store of that version held them (today's submit_study writes columns added later).
    for job, status in ((a, "failed"), (b, "queued")):
        old.execute("INSERT INTO jobs (key, kind, label, config_json, status, created_at)"
                    " VALUES (?, ?, ?, '{}', ?, '')", [job.key, job.kind, job.label, status])
    old.execute("INSERT INTO job_deps (job_key, dep_key) VALUES (?, ?)", [b.key, a.key])
    old.conn.commit()
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint"):
        old.execute("UPDATE jobs SET status = 'blocked' WHERE key = ?", [b.key])
    old.conn.close()
    db = open_store(tmp_path / "old.db")
    assert q.load_job(db, b.key)["status"] == "blocked"


def test_interrupt_does_not_count_an_attempt(qdb):
    a = fake("a")
    submit(qdb, [a])
    _claim(qdb)
    assert q.mark_job_interrupted(qdb, a.key) == "queued"
    assert q.load_job(qdb, a.key)["attempts"] == 0


def test_priority_and_prefix_lookup(qdb):
    a = fake("a")
    submit(qdb, [a])
    assert q.set_job_priority(qdb, a.key, 7)
    assert q.load_job(qdb, a.key)["priority"] == 7
    assert q.find_job_keys(qdb, a.key[:6]) == [a.key]
    assert q.find_job_keys(qdb, "zz%") == []


def test_engine_lock_refuses_live_holder_and_takes_over_dead_one(qdb):
    assert q.claim_engine(qdb, 111, "h", lambda row: True) is None
    refused = q.claim_engine(qdb, 222, "h", lambda row: True)
    assert refused["pid"] == 111
    assert q.claim_engine(qdb, 222, "h", lambda row: False) is None
    assert q.load_engine(qdb)["pid"] == 222
    assert not q.heartbeat_engine(qdb, 111, "h")
    q.release_engine(qdb, 222, "h")
    assert q.load_engine(qdb) is None


def test_store_and_logs_are_private(store_path, monkeypatch):
    from xaug.engine.errors import EngineError
    from xaug.engine.queue.engine import ensure_own_store, logs_dir

    assert stat.S_IMODE(os.stat(store_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(logs_dir(store_path)).st_mode) == 0o700
    monkeypatch.setattr(os, "getuid", lambda: os.stat(store_path).st_uid + 1)
    with pytest.raises(EngineError, match="belongs to uid"):
        ensure_own_store(store_path)
