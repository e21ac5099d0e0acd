"""The queue's job table: rows are updated incrementally, cell by cell, so 10,000 jobs stay responsive."""

from __future__ import annotations

import datetime as _dt

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

COLUMNS = (("kind", "Kind"), ("study", "Study"), ("label", "Job"), ("status", "Status"), ("progress", "Progress"),
           ("eta", "ETA"), ("gpu", "GPU"), ("elapsed", "Elapsed"), ("priority", "Prio"))
WIDTHS = {"status": 20, "progress": 17, "eta": 7, "gpu": 5, "elapsed": 8, "priority": 4}
"""Fixed widths of the columns whose text changes in place (cells are updated without re-measuring a column)."""
STATUS_STYLE = {"queued": "dim", "running": "bold cyan", "done": "green", "failed": "bold red",
                "cancelled": "yellow", "blocked": "magenta"}
BAR_WIDTH = 12


def format_duration(seconds: float | None) -> str:
    """Seconds as `1h02m`, `3m07s` or `12s`; empty for None."""
    if seconds is None or seconds < 0:
        return ""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def progress_bar(done: float, total: float, width: int = BAR_WIDTH, finished: bool = False) -> Text:
    """A text progress bar with a percentage, e.g. `██████░░░░░░  50%`; full once `finished`."""
    fraction = 1.0 if finished else min(max(done / total, 0.0), 1.0) if total else 0.0
    filled = round(fraction * width)
    bar = Text("█" * filled, style="green")
    bar.append("░" * (width - filled), style="dim")
    bar.append(f" {fraction * 100:3.0f}%")
    return bar


def _parse(stamp: str | None) -> _dt.datetime | None:
    """An ISO timestamp from the store as an aware datetime."""
    if not stamp:
        return None
    value = _dt.datetime.fromisoformat(stamp)
    return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)


def elapsed_s(row: dict) -> float | None:
    """Run time of a job: started -> ended, or started -> now while it runs."""
    start = _parse(row.get("started_at"))
    if start is None:
        return None
    end = _parse(row.get("ended_at")) or _dt.datetime.now(_dt.timezone.utc)
    return (end - start).total_seconds()


def job_cells(row: dict) -> tuple:
    """The displayed cells of one job row, in column order."""
    status = row["status"]
    note = ""
    if status == "running":  # cancelling, or where Slurm has the job (PENDING means it waits for a node)
        note = " (cancelling)" if row.get("cancel_requested") else (
            f" ({row['slurm_state'].lower()})" if row.get("slurm_state") else "")
    status_text = Text(status + note, style=STATUS_STYLE.get(status, ""))
    eta = format_duration(row.get("eta_s")) if status == "running" else ""
    # Text everywhere: a plain str cell would be parsed as Rich markup (slower, and a '[' in a label breaks it).
    return (Text(row["kind"]), Text(row.get("studies") or ""), Text(row["label"]), status_text,
            progress_bar(row.get("progress") or 0.0, row.get("progress_total") or 0.0, finished=status == "done"),
            Text(eta),
            Text(row.get("gpus") or ""), Text(format_duration(elapsed_s(row))), Text(str(row.get("priority", 0))))


def row_signature(row: dict) -> tuple:
    """The raw values a row's cells are drawn from: equal signatures mean nothing to redraw (cheap to compare)."""
    return tuple(row.get(name) for name in _SIGNATURE)


_SIGNATURE = ("kind", "studies", "label", "status", "cancel_requested", "progress", "progress_total", "eta_s", "gpus",
              "started_at", "ended_at", "priority", "slurm_state")


class JobTable(DataTable):
    """Every job of the queue; `apply_rows` diffs a fresh query against what is shown and touches only changes."""

    class JobSelected(Message):
        """The user chose a job (Enter on a row)."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._cells: dict[str, tuple] = {}
        self._signatures: dict[str, tuple] = {}
        self.jobs: dict[str, dict] = {}
        """Job key -> the row last applied (attributes down: the screen reads it, never the table's cells)."""

    def on_mount(self) -> None:
        """Create the columns."""
        for key, label in COLUMNS:
            self.add_column(label, key=key, width=WIDTHS.get(key))

    @property
    def selected_key(self) -> str | None:
        """The key of the job under the cursor, if any."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def reset(self) -> None:
        """Forget every row (e.g. when the filter changes)."""
        self.clear()
        self._cells.clear()
        self._signatures.clear()
        self.jobs.clear()

    def apply_rows(self, rows: list[dict], *, complete: bool = True) -> int:
        """Bring the table in line with `rows`: add new jobs, update changed cells and, when `rows` is the
        `complete` result (not one chunk of it), drop vanished jobs. Returns how many rows or cells changed."""
        changes = 0
        for row in rows:
            key = row["key"]
            self.jobs[key] = row
            signature = row_signature(row)
            if self._signatures.get(key) == signature:
                continue
            self._signatures[key] = signature
            cells = job_cells(row)
            old = self._cells.get(key)
            if old is None:
                self.add_row(*cells, key=key)
                changes += 1
            elif old != cells:
                for (column, _), before, after in zip(COLUMNS, old, cells):
                    if before != after:
                        self.update_cell(key, column, after)
                        changes += 1
            self._cells[key] = cells
        if complete:
            changes += self.prune({row["key"] for row in rows})
        return changes

    def prune(self, keep: set[str]) -> int:
        """Remove rows whose job is not in `keep`; returns how many were removed."""
        gone = [key for key in self._cells if key not in keep]
        for key in gone:
            self.remove_row(key)
            del self._cells[key], self._signatures[key]
            self.jobs.pop(key, None)
        return len(gone)

    def tick_elapsed(self) -> None:
        """Refresh the elapsed time of running jobs only (no query)."""
        for key, row in self.jobs.items():
            if row["status"] == "running":
                text = Text(format_duration(elapsed_s(row)))
                cells = self._cells[key]
                if cells[7] != text:
                    self.update_cell(key, "elapsed", text)
                    self._cells[key] = cells[:7] + (text,) + cells[8:]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row: tell the screen which job was chosen."""
        event.stop()
        self.post_message(self.JobSelected(event.row_key.value))
