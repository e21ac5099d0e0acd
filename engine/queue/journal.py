"""A remote worker's journal: the files through which a job on another node records into the store.

Each job run by a remote executor has a folder `<artifact root>/journal/<key[:16]>/` in the shared artifact folder:

- `snapshot.json`, written by the engine before it submits the job: the rows the job may read
  (`xaug.store.changes.job_snapshot`);
- `journal.jsonl`, appended by the worker: one JSON entry per line, numbered `seq` 1, 2, 3...; an entry holds the
  row changes the job made since the previous one, or, last, the job's outcome (done, failed, interrupted).
  Each entry is written before the job goes on (fsynced every second and with the outcome), and a line cut
  short by a crash is ignored;
- `stop`, created by the engine to ask the worker to checkpoint and stop (a cancel), next to Slurm's signal.

The engine (one host, the only one that opens SQLite) reads the entries after the last applied `seq` and applies
them with that `seq` in the same transaction (`ingest_journal`): an engine that dies between reading and writing
applies them again later, once.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
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
    """Appends numbered entries to a job's journal. Each entry is in the kernel when `append` returns, so a killed
    worker loses nothing; the file is fsynced with the outcome and on any append `SYNC_S` after the last fsync,
    so a crashed *node* loses at most about a second of rows (an fsync per metric would cost ~8 ms each here)."""

    SYNC_S = 1.0

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / JOURNAL
        self.seq = _drop_torn_tail(self.path)
        self._fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        self._synced_at = time.monotonic()

    def append(self, entry: dict, sync: bool = False) -> int:
        """Write one entry with the next sequence number (fsynced when `sync` or due); returns that number."""
        self.seq += 1
        line = json.dumps({"seq": self.seq, **entry}, separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode())
        if sync or time.monotonic() - self._synced_at >= self.SYNC_S:
            os.fsync(self._fd)
            self._synced_at = time.monotonic()
        return self.seq

    def changes(self, changes: list[dict]) -> None:
        """Journal row changes (nothing when there are none)."""
        if changes:
            self.append({"changes": changes})

    def outcome(self, status: str, error: str | None = None, retryable: bool = True) -> None:
        """Journal how the job ended: done, failed (with its error, and whether a retry may heal it) or interrupted
        (resumes from a checkpoint)."""
        self.append({"outcome": status, "error": error, "retryable": retryable}, sync=True)

    def close(self) -> None:
        """Release the file (the process's exit does it too)."""
        os.close(self._fd)


def read_journal(path: Path, after: int = 0) -> list[dict]:
    """The complete entries of a journal file with seq > `after`, in order (a torn last line is left out)."""
    return [entry for entry in _read_from(Path(path), 0)[0] if entry["seq"] > after]


def _read_from(path: Path, offset: int) -> tuple[list[dict], int]:
    """The complete entries from byte `offset` on, and the offset after the last of them."""
    if not path.exists():
        return [], offset
    entries = []
    with open(path, "rb") as fh:
        fh.seek(offset)
        for line in fh:
            if not line.endswith(b"\n"):
                break  # written partly when the worker died; its next run cuts it
            entries.append(json.loads(line))
            offset += len(line)
    return entries, offset


@dataclass
class Ingested:
    """What one `ingest_journal` call applied."""

    entries: int = 0
    outcome: str | None = None
    rejected: list[str] = field(default_factory=list)
    """Changes left out because they touched rows of another job or a table jobs may not write."""
    offset: int = 0
    """Where the next call may start reading the journal file (it only grows while this run lasts)."""


def ingest_journal(db, store_path: str | Path, key: str, offset: int = 0) -> Ingested:
    """Apply the job's journal entries after the last applied one: row changes with their seq in one transaction,
    an outcome through the queue's own state changes (once: only while the job is still running). `offset`, from
    the previous call's result, skips the part of the file already read."""
    entries, end = _read_from(journal_dir(store_path, key) / JOURNAL, offset)
    after = applied_seq(db, key)
    done = Ingested(offset=end)
    batch: list[dict] = []  # row changes up to an outcome are applied in one transaction with their last seq
    for entry in (e for e in entries if e["seq"] > after):
        if "outcome" in entry:
            done.rejected += _apply_batch(db, key, batch)
            batch = []
            _apply_outcome(db, key, entry)
            apply_changes(db, key, [], entry["seq"])
            done.outcome = entry["outcome"]
        else:
            batch.append(entry)
        done.entries += 1
    done.rejected += _apply_batch(db, key, batch)
    return done


def _apply_batch(db, key: str, entries: list[dict]) -> list[str]:
    if not entries:
        return []
    return apply_changes(db, key, [c for e in entries for c in e.get("changes") or []], entries[-1]["seq"])


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
        mark_job_failed(db, key, entry.get("error") or "failed", OUTCOME_EXIT["failed"],
                        retryable=entry.get("retryable", True))


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
