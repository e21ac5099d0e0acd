"""A remote worker's journal: the files through which a job on another node records into the store.

Each job run by a remote executor has a folder `<artifact root>/journal/<key[:16]>/` in the shared artifact folder:

- `snapshot.json`, written by the engine before it submits the job: the rows the job may read
  (`xaug.store.changes.job_snapshot`);
- `journal.jsonl`, appended by the worker: one JSON entry per line, numbered `seq` 1, 2, 3...; an entry holds the
  row changes the job made since the previous one, or, last, the job's outcome (done, failed, interrupted).
  Each append is flushed and fsynced before the worker goes on, and a line cut short by a crash is ignored;
- `stop`, created by the engine to ask the worker to checkpoint and stop (a cancel), next to Slurm's signal.

The engine (one host, the only one that opens SQLite) reads the entries after the last applied `seq` and applies
them with that `seq` in the same transaction (`ingest_journal`): an engine that dies between reading and writing
applies them again later, once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from xaug.store import artifact_root
from xaug.store.changes import applied_seq, apply_changes, job_snapshot
from xaug.store.jobs import load_job, mark_job_done, mark_job_failed, mark_job_interrupted

SNAPSHOT = "snapshot.json"
JOURNAL = "journal.jsonl"
STOP = "stop"

OUTCOME_EXIT = {"done": 0, "failed": 1, "interrupted": 3}
"""The worker's exit status for each outcome (worker.EXIT_DONE, EXIT_FAILED, EXIT_INTERRUPTED)."""


def journal_dir(store_path: str | Path, key: str) -> Path:
    """The journal folder of a job in the store's (shared) artifact folder."""
    return artifact_root(store_path) / "journal" / key[:16]


def write_snapshot(db, store_path: str | Path, key: str) -> Path:
    """Before a job is submitted: write what it may read to its journal folder, and clear an old stop request."""
    folder = journal_dir(store_path, key)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / STOP).unlink(missing_ok=True)
    _write_atomic(folder / SNAPSHOT, json.dumps(job_snapshot(db, key)))
    return folder


def read_snapshot(folder: Path) -> dict:
    """The rows written by `write_snapshot`."""
    return json.loads((Path(folder) / SNAPSHOT).read_text())


def request_stop(folder: Path) -> None:
    """Ask the worker of this journal to checkpoint and stop."""
    (Path(folder) / STOP).touch()


def stop_requested(folder: Path) -> bool:
    """Whether the engine asked this journal's worker to stop."""
    return (Path(folder) / STOP).exists()


class JournalWriter:
    """Appends numbered entries to a job's journal; each append is on disk (fsync) when `append` returns."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / JOURNAL
        self.seq = _drop_torn_tail(self.path)

    def append(self, entry: dict) -> int:
        """Write one entry with the next sequence number; returns that number."""
        self.seq += 1
        line = json.dumps({"seq": self.seq, **entry}, separators=(",", ":")) + "\n"
        fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return self.seq

    def changes(self, changes: list[dict]) -> None:
        """Journal row changes (nothing when there are none)."""
        if changes:
            self.append({"changes": changes})

    def outcome(self, status: str, error: str | None = None) -> None:
        """Journal how the job ended: done, failed (with its error) or interrupted (resumes from a checkpoint)."""
        self.append({"outcome": status, "error": error})


def read_journal(path: Path, after: int = 0) -> list[dict]:
    """The complete entries of a journal file with seq > `after`, in order (a torn last line is left out)."""
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break  # written partly when the worker died: never fsynced, never acknowledged
            entry = json.loads(line)
            if entry["seq"] > after:
                entries.append(entry)
    return entries


@dataclass
class Ingested:
    """What one `ingest_journal` call applied."""

    entries: int = 0
    outcome: str | None = None


def ingest_journal(db, store_path: str | Path, key: str) -> Ingested:
    """Apply the job's journal entries after the last applied one: row changes with their seq in one transaction,
    an outcome through the queue's own state changes (once: only while the job is still running)."""
    entries = read_journal(journal_dir(store_path, key) / JOURNAL, after=applied_seq(db, key))
    done = Ingested()
    for entry in entries:
        if "outcome" in entry:
            _apply_outcome(db, key, entry)
            done.outcome = entry["outcome"]
        apply_changes(db, key, entry.get("changes") or [], entry["seq"])
        done.entries += 1
    return done


def _apply_outcome(db, key: str, entry: dict) -> None:
    # An outcome applied before an engine crash left the job no longer running: applying it again is skipped.
    job = load_job(db, key)
    if job is None or job["status"] != "running":
        return
    status = entry["outcome"]
    if status == "done":
        mark_job_done(db, key)
    elif status == "interrupted":
        mark_job_interrupted(db, key, "interrupted: resumes from its checkpoint")
    else:
        mark_job_failed(db, key, entry.get("error") or "failed", OUTCOME_EXIT["failed"])


def _drop_torn_tail(path: Path) -> int:
    """Cut a line left incomplete by a killed worker (so the next entry starts on its own line); returns the
    last complete entry's seq (a new run of the job continues the numbering: the store remembers it)."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(end)
    lines = data[:end].splitlines()
    return json.loads(lines[-1])["seq"] if lines else 0


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
