"""A remote worker's journal: the job records into files, the engine applies them to the store exactly once."""

from __future__ import annotations

import json

import pytest
from queue_helpers import fake, submit


@pytest.fixture
def claimed(qdb, store_path, fake_kinds):
    """A fake job with a done dependency, claimed (running) and given its snapshot, as the Slurm executor does."""
    from xaug.engine.queue.journal import write_snapshot
    from xaug.store.artifacts import record_artifact
    from xaug.store.jobs import claim_job, mark_job_done

    dep = fake("dep")
    job = fake("job", [dep], steps=4)
    submit(qdb, [dep, job])
    claim_job(qdb, lambda j: [], host="h", log_path_for=lambda j: "x.log")
    mark_job_done(qdb, dep.key)
    record_artifact(qdb, dep.key, "checkpoint", "jobs/fake/dep/ckpt.json", step=7)
    claim_job(qdb, lambda j: [], host="h", log_path_for=lambda j: "x.log")
    folder = write_snapshot(qdb, store_path, job.key)
    return job.key, dep.key, folder


def _metric_rows(db, key):
    return [(r["name"], r["step"], r["value"]) for r in
            db.query("SELECT name, step, value FROM metrics WHERE job_key = ? ORDER BY name, step", [key])]


def test_a_journaled_job_records_nothing_until_ingested_then_everything_once(qdb, store_path, claimed):
    from xaug.engine.queue.journal import JOURNAL, ingest_journal, read_journal
    from xaug.engine.queue.worker import EXIT_DONE, run_job
    from xaug.store.changes import applied_seq
    from xaug.store.jobs import load_job

    key, _, folder = claimed
    assert run_job(store_path, key, folder) == EXIT_DONE
    assert _metric_rows(qdb, key) == []  # the worker never opened the store
    assert load_job(qdb, key)["status"] == "running"
    entries = read_journal(folder / JOURNAL)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert entries[-1]["outcome"] == "done"

    done = ingest_journal(qdb, store_path, key)
    assert done.outcome == "done" and done.entries == len(entries)
    job = load_job(qdb, key)
    assert job["status"] == "done" and job["progress"] == 4 and job["journal_seq"] == entries[-1]["seq"]
    rows = _metric_rows(qdb, key)
    assert [(n, s) for n, s, _ in rows] == [("loss", s) for s in (1, 2, 3, 4)] + [("step_seen", s) for s in
                                                                                  (1, 2, 3, 4)]
    assert done.offset == (folder / JOURNAL).stat().st_size  # the next poll starts reading there
    assert ingest_journal(qdb, store_path, key, done.offset).entries == 0
    assert ingest_journal(qdb, store_path, key).entries == 0  # from the start (a restarted engine): nothing new
    assert _metric_rows(qdb, key) == rows and applied_seq(qdb, key) == entries[-1]["seq"]


def test_an_engine_that_dies_between_reading_and_writing_applies_each_entry_once(qdb, store_path, claimed):
    """Entries applied, then the seq 'lost' with a crash (rolled back with its transaction): nothing doubles."""
    from xaug.engine.queue.journal import JOURNAL, ingest_journal, read_journal
    from xaug.engine.queue.worker import run_job
    from xaug.store.changes import apply_changes

    key, _, folder = claimed
    run_job(store_path, key, folder)
    entries = read_journal(folder / JOURNAL)
    first = entries[0]
    apply_changes(qdb, key, first["changes"], first["seq"])  # the engine got this far, then died
    ingest_journal(qdb, store_path, key)  # the restarted engine continues after seq 1
    ingest_journal(qdb, store_path, key)
    assert qdb.execute("SELECT COUNT(*), COUNT(DISTINCT name || step) FROM metrics WHERE job_key = ?",
                       [key]).fetchone() == (8, 8)


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_run_appends(store_path, claimed):
    from xaug.engine.queue.journal import JOURNAL, JournalWriter, read_journal

    _, _, folder = claimed
    writer = JournalWriter(folder)
    writer.changes([{"op": "upsert", "table": "results", "key": {}, "row": {}}])
    with open(folder / JOURNAL, "ab") as fh:
        fh.write(b'{"seq":2,"chan')  # the worker was killed mid-write
    assert [e["seq"] for e in read_journal(folder / JOURNAL)] == [1]
    again = JournalWriter(folder)
    again.outcome("interrupted")
    assert [(e["seq"], e.get("outcome")) for e in read_journal(folder / JOURNAL)] == [(1, None), (2, "interrupted")]
    assert all(json.loads(line) for line in (folder / JOURNAL).read_text().splitlines())


def test_the_snapshot_lets_a_job_read_its_dependencies_and_deletes_reach_the_store(qdb, store_path, claimed):
    from xaug.engine.queue.journal import JournalWriter, ingest_journal, read_snapshot, write_snapshot
    from xaug.store.artifacts import load_artifacts
    from xaug.store.changes import drain_changes, open_scratch_store
    from xaug.store.metrics import delete_metrics_after, record_metrics, record_results

    key, dep_key, folder = claimed
    record_metrics(qdb, key, 5, {"loss": 0.5})
    record_metrics(qdb, key, 9, {"loss": 0.1})  # from a run that died after its last checkpoint at step 5
    write_snapshot(qdb, store_path, key)  # the next run's snapshot
    scratch = open_scratch_store(read_snapshot(folder))
    assert [r["step"] for r in load_artifacts(scratch, dep_key, kind="checkpoint")] == [7]
    assert "patient_salt" not in {r["key"] for r in scratch["meta"].rows}  # the key stays beside the store
    delete_metrics_after(scratch, key, 5)
    record_results(scratch, key, {"accuracy": 0.75})
    JournalWriter(folder).changes(drain_changes(scratch))
    ingest_journal(qdb, store_path, key)
    assert _metric_rows(qdb, key) == [("loss", 5, 0.5)]
    assert qdb.execute("SELECT value FROM results WHERE job_key = ?", [key]).fetchall() == [(0.75,)]


def test_a_journal_may_not_write_another_jobs_rows(qdb, store_path, claimed):
    from xaug.store.changes import apply_changes

    key, dep_key, _ = claimed
    change = {"op": "upsert", "table": "results", "key": {"job_key": dep_key, "name": "accuracy"},
              "row": {"job_key": dep_key, "name": "accuracy", "value": 1.0}}
    ours = {"op": "upsert", "table": "results", "key": {"job_key": key, "name": "accuracy"},
            "row": {"job_key": key, "name": "accuracy", "value": 0.5}}
    engine_state = {"op": "upsert", "table": "engine", "key": {"id": 1}, "row": {"id": 1, "pid": 1}}
    odd_column = {"op": "upsert", "table": "results", "key": {"job_key": key, "name": "x"},
                  "row": {"job_key": key, "name": "x", "value] = 1; --": 0}}
    rejected = apply_changes(qdb, key, [change, ours, engine_state, odd_column], 1)
    assert rejected == [f"a row of job {dep_key[:12]} in 'results'", "table 'engine', which a job may not write",
                        "unknown columns ['value] = 1; --'] in 'results'"]
    assert qdb.execute("SELECT job_key, value FROM results").fetchall() == [(key, 0.5)]
