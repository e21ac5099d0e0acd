"""The queue: every job with progress, ETA, GPU and elapsed time, running first, then queued by priority and
submission, then failed, then done (most recent first); commands to cancel, retry, reprioritise, submit.

Reads run in a worker on a read-only connection; every command is a store write in a worker (`XaugApp.write`)."""

from __future__ import annotations

import time

from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from xaug.store.job_states import STATUSES
from xaug.store.jobs import is_paused, list_jobs, load_engine, load_gpu_stats, queue_shape, study_counts
from xaug.tui import commands
from xaug.tui.messages import ElapsedTicked, StoreChanged
from xaug.tui.screens.prompts import TextPrompt
from xaug.tui.widgets.engine_bar import EngineBar, engine_state
from xaug.tui.widgets.job_table import SHOWN_FIELDS, JobRows, JobTable

FULL_READ_S = 10.0
"""Every job is read again at least this often while the store changes (what the queue's shape misses shows up)."""


def parse_filter(text: str, studies: list[str]) -> tuple[str | None, str | None]:
    """`study:NAME status:STATUS`, or bare words (a status name, else a study name) -> (study, status)."""
    study = status = None
    for word in text.split():
        name, _, value = word.partition(":")
        if value and name == "study":
            study = value
        elif value and name == "status":
            status = value
        elif word in STATUSES:
            status = word
        else:
            study = word
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status '{status}'; use one of {', '.join(STATUSES)}")
    if study is not None and studies and study not in studies:
        raise ValueError(f"no study '{study}' in the store; studies: {', '.join(studies)}")
    return study, status


class QueueScreen(Screen):
    """The job queue, live: re-read only when PRAGMA data_version says another connection committed."""

    BINDINGS = [
        ("n", "submit", "Submit"),
        ("c", "cancel", "Cancel"),
        ("r", "retry", "Retry"),
        ("plus,equals_sign", "priority(1)", "Prio+"),
        ("minus", "priority(-1)", "Prio-"),
        ("l", "logs", "Log"),
        ("slash", "filter", "Filter"),
        ("f", "cycle_status", "Status"),
        ("p", "toggle_pause", "Pause"),
        ("s", "cycle_study", "Study"),
        ("g", "toggle_grouping", "Group"),
    ]

    class JobsFetched(Message):
        """A worker read the queue (for the filter and grouping it was started with) and indexed the rows; `changed`
        are the jobs drawn differently than in `base`, the table's rows when the read started."""

        def __init__(self, rows: JobRows, base: JobRows, changed: set[str], engine: dict, gpus: list[dict],
                     counts: dict, view: tuple, query_s: float) -> None:
            super().__init__()
            self.rows, self.base, self.changed = rows, base, changed
            self.engine, self.gpus, self.counts = engine, gpus, counts
            self.view, self.query_s = view, query_s

    def __init__(self) -> None:
        super().__init__()
        self.filter_study: str | None = None
        self.filter_status: str | None = None
        self.grouped = False
        """Rows grouped by study (each study's jobs together, in queue order within it)."""
        self.last_refresh_s: dict[str, float] = {}
        """Timing of the last refresh: `query` (worker) and `apply` (table diff on the UI thread)."""
        self.engine: dict = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield EngineBar(id="engine-bar")
        yield Static("", id="queue-filter")
        yield JobTable(id="jobs")
        yield Footer()

    def on_mount(self) -> None:
        """First read of the queue."""
        self.sub_title = "queue"
        self.refresh_jobs()

    def on_screen_resume(self) -> None:
        """Coming back from a detail screen: read again."""
        self.refresh_jobs()

    @on(StoreChanged)
    def _store_changed(self) -> None:
        self.refresh_jobs()

    @on(ElapsedTicked)
    def _tick(self) -> None:
        self.query_one(JobTable).tick_elapsed()
        self.query_one(EngineBar).tick()

    @property
    def filters(self) -> tuple:
        """The active (study, status) filter."""
        return (self.filter_study, self.filter_status)

    @property
    def view(self) -> tuple:
        """What the rows depend on besides the store: the filter and the grouping."""
        return (self.filter_study, self.filter_status, self.grouped)

    @work(thread=True, exclusive=True, group="queue-read")
    def refresh_jobs(self) -> None:
        """Read and index the queue in a worker thread on its own read-only connection, and post it back: the UI
        thread only swaps the rows in. The very first read is of a screenful, shown before everything is read."""
        view, base = self.view, self.query_one(JobTable).rows
        db = self.app.open_reader()
        try:
            engine = engine_state(load_engine(db), is_paused(db))
            gpus, counts = load_gpu_stats(db), study_counts(db, None)
            started = time.perf_counter()
            rows = self._read_rows(db, view, base, None if base.order else (self.size.height or 50))
        finally:
            db.conn.close()
        self.post_message(self.JobsFetched(rows, base, rows.changed_since(base), engine, gpus, counts, view,
                                           time.perf_counter() - started))

    def _read_rows(self, db, view: tuple, base: JobRows, limit: int | None) -> JobRows:
        """The queue's rows: only the running jobs again when nothing but their progress changed since `base`
        (a few milliseconds with 10,000 jobs), else every job (the first `limit`) in queue order."""
        shape = (view, queue_shape(db))  # rows read under another filter or grouping are no base
        if shape == base.shape and time.monotonic() - base.read_at < FULL_READ_S:
            return base.updated(list_jobs(db, study=view[0], status="running", order="queue", with_deps=False,
                                          fields=SHOWN_FIELDS))
        rows = list_jobs(db, study=view[0], status=view[1], order="queue", with_deps=False, fields=SHOWN_FIELDS,
                         limit=limit)
        if view[2]:  # grouped: a stable sort keeps the queue order within each study
            rows.sort(key=lambda row: row.get("studies") or "")
        return JobRows.build(rows, shape if limit is None else None)

    def on_queue_screen_jobs_fetched(self, message: JobsFetched) -> None:
        """Show a read (ignored when the filter or grouping changed meanwhile)."""
        if message.view != self.view:
            return
        started = time.perf_counter()
        self.engine = message.engine
        self.query_one(EngineBar).show(message.engine, message.gpus, message.counts)
        table = self.query_one(JobTable)
        # compared with what the table showed when the read began; if another read landed since, redraw all
        table.show_rows(message.rows, message.changed if table.rows is message.base else None)
        self.last_refresh_s = {"query": message.query_s, "apply": time.perf_counter() - started}
        if message.rows.shape is None:  # a first screenful: read the rest once it is on screen
            self.call_after_refresh(self.refresh_jobs)

    def _show_filter(self) -> None:
        """Describe the active filter above the table."""
        parts = [f"study={self.filter_study}"] if self.filter_study else []
        parts += [f"status={self.filter_status}"] if self.filter_status else []
        text = "filter: " + " ".join(parts) if parts else ""
        text += ("   " if text else "") + ("grouped by study" if self.grouped else "")
        self.query_one("#queue-filter", Static).update(text)

    def set_filter(self, study: str | None, status: str | None) -> None:
        """Show only jobs of a study and/or status (None = all)."""
        self.filter_study, self.filter_status = study, status
        self._show_filter()
        self.refresh_jobs()

    def _selected(self) -> tuple[str, dict] | None:
        """The job under the cursor, or a notification that there is none."""
        table = self.query_one(JobTable)
        key = table.selected_key
        if key is None:
            self.notify("no job selected", severity="warning")
            return None
        return key, table.jobs[key]

    def on_job_table_job_selected(self, message: JobTable.JobSelected) -> None:
        """Enter on a job: open its detail screen."""
        from xaug.tui.screens.job_detail import JobDetailScreen

        self.app.push_screen(JobDetailScreen(message.key))

    def _command_done(self, text: str) -> None:
        """Our own writes do not change our data_version: re-read explicitly and tell the user."""
        self.notify(text)
        self.refresh_jobs()

    def action_cancel(self) -> None:
        """Cancel the selected job (queued: cancelled now; running: the engine is asked to stop it)."""
        if chosen := self._selected():
            key, label = chosen[0], chosen[1]["label"]
            self.app.write(lambda db: f"{label}: {commands.cancel(db, key)}", self._command_done, "cancel")

    def action_retry(self) -> None:
        """Queue the selected failed/cancelled job again."""
        if chosen := self._selected():
            key, label = chosen[0], chosen[1]["label"]
            self.app.write(lambda db: f"{label}: {commands.retry(db, key)}", self._command_done, "retry")

    def action_priority(self, delta: int) -> None:
        """Raise or lower the selected job's priority."""
        if chosen := self._selected():
            key, row = chosen
            current = int(row.get("priority") or 0)
            row["priority"] = current + delta  # a second key press before the write lands counts from here
            self.app.write(lambda db: f"{row['label']}: priority {commands.change_priority(db, key, current, delta)}",
                           self._command_done, "priority")

    def action_toggle_pause(self) -> None:
        """Pause or resume the queue."""
        paused = not self.engine.get("paused", False)
        self.engine["paused"] = paused

        def pause(db) -> str:
            commands.set_paused(db, paused)
            return "queue paused: running jobs finish, no new ones start" if paused else "queue resumed"

        self.app.write(pause, self._command_done, "pause")

    def action_logs(self) -> None:
        """Open the selected job's log."""
        from xaug.tui.screens.log import LogScreen

        if chosen := self._selected():
            self.app.push_screen(LogScreen(chosen[0]))

    def action_cycle_status(self) -> None:
        """Cycle the status filter: all -> queued -> running -> done -> failed -> cancelled -> all."""
        order = (None,) + STATUSES
        self.set_filter(self.filter_study, order[(order.index(self.filter_status) + 1) % len(order)])

    def action_cycle_study(self) -> None:
        """Cycle the study filter: all -> each study -> all."""
        order = [None, *self.app.study_names()]
        current = order.index(self.filter_study) if self.filter_study in order else 0
        self.set_filter(order[(current + 1) % len(order)], self.filter_status)

    def action_toggle_grouping(self) -> None:
        """Group the rows by study, or back to one queue order."""
        self.grouped = not self.grouped
        self._show_filter()
        self.refresh_jobs()

    def action_filter(self) -> None:
        """Ask for a filter such as `study:quickstart status:failed` (empty clears it)."""
        current = " ".join(f"{k}:{v}" for k, v in zip(("study", "status"), self.filters) if v)
        self.app.push_screen(TextPrompt("Filter jobs (study:NAME status:STATUS, empty = all)", current),
                             self._filter_given)

    def _filter_given(self, text: str | None) -> None:
        """Apply the filter typed in the prompt."""
        if text is None:
            return
        try:
            study, status = parse_filter(text, self.app.study_names())
        except ValueError as exc:
            self.notify(str(exc), severity="error", title="filter")
            return
        self.set_filter(study, status)

    def action_submit(self) -> None:
        """Ask for a recipe path and submit it."""
        self.app.push_screen(TextPrompt("Submit recipe (path to a YAML recipe)", placeholder="recipes/quickstart.yaml"),
                             self._recipe_given)

    def _recipe_given(self, path: str | None) -> None:
        if path:
            self._submit(path)

    def _submit(self, path: str) -> None:
        """Plan and submit off the UI thread (loading and planning may take a moment); a bad recipe is a
        notification with every problem and its line."""
        self.app.write(lambda db: commands.submit_recipe(db, path), self._command_done, "submit")
