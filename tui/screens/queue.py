"""The queue: every job with progress, ETA, GPU and elapsed time; commands to cancel, retry, reprioritise, submit."""

from __future__ import annotations

import time

from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from xaug.store.errors import XaugError
from xaug.store import views
from xaug.tui import commands
from xaug.tui.messages import ElapsedTicked, StoreChanged
from xaug.tui.screens.prompts import TextPrompt
from xaug.tui.widgets.engine_bar import EngineBar
from xaug.tui.widgets.job_table import JobTable

CHUNK = 500
"""Rows added to the table per step of a large load; between steps the table measures them and keys are handled."""


def parse_filter(text: str, studies: list[str]) -> tuple[str | None, str | None]:
    """`study:NAME status:STATUS`, or bare words (a status name, else a study name) -> (study, status)."""
    study = status = None
    for word in text.split():
        name, _, value = word.partition(":")
        if value and name == "study":
            study = value
        elif value and name == "status":
            status = value
        elif word in views.JOB_STATUSES:
            status = word
        else:
            study = word
    if status is not None and status not in views.JOB_STATUSES:
        raise ValueError(f"unknown status '{status}'; use one of {', '.join(views.JOB_STATUSES)}")
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
    ]

    class JobsFetched(Message):
        """A worker read the queue (rows for the filter it was started with)."""

        def __init__(self, rows: list[dict], engine: dict, gpus: list[dict], counts: dict, filters: tuple,
                     query_s: float) -> None:
            super().__init__()
            self.rows, self.engine, self.gpus, self.counts = rows, engine, gpus, counts
            self.filters, self.query_s = filters, query_s

    class QueueRefreshed(Message):
        """The table now shows the latest read (tests and measurements wait for this)."""

    def __init__(self) -> None:
        super().__init__()
        self._generation = 0
        self.filter_study: str | None = None
        self.filter_status: str | None = None
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

    @work(thread=True, exclusive=True, group="queue-read")
    def refresh_jobs(self) -> None:
        """Read the queue in a worker thread on its own read-only connection and post it back."""
        filters = self.filters
        started = time.perf_counter()
        db = views.open_reader(self.app.db_path)
        try:
            rows = views.list_queue(db, study=filters[0], status=filters[1])
            engine, gpus, counts = views.engine_status(db), views.list_gpu_stats(db), views.queue_counts(db)
        finally:
            db.conn.close()
        self.post_message(self.JobsFetched(rows, engine, gpus, counts, filters, time.perf_counter() - started))

    def on_queue_screen_jobs_fetched(self, message: JobsFetched) -> None:
        """Apply a read to the table (ignored when the filter changed meanwhile).

        A large first load is added CHUNK rows per event-loop turn, so keys and repaints stay responsive meanwhile.
        """
        if message.filters != self.filters:
            return
        self.engine = message.engine
        self.query_one(EngineBar).show(message.engine, message.gpus, message.counts)
        self._generation += 1
        self._apply_chunks(message.rows, 0, self._generation, time.perf_counter(), message.query_s)

    def _apply_chunks(self, rows: list[dict], start: int, generation: int, started: float, query_s: float) -> None:
        """Apply rows[start:start+CHUNK]; schedule the rest; prune vanished jobs at the end."""
        if generation != self._generation:
            return  # a newer read superseded this one
        table = self.query_one(JobTable)
        new_rows = sum(1 for row in rows[start:start + CHUNK] if row["key"] not in table.jobs)
        end = start + CHUNK if new_rows > CHUNK // 2 else len(rows)
        table.apply_rows(rows[start:end], complete=False)
        if end < len(rows):
            self.set_timer(0.02, lambda: self._apply_chunks(rows, end, generation, started, query_s))
            return
        table.prune({row["key"] for row in rows})
        self.last_refresh_s = {"query": query_s, "apply": time.perf_counter() - started}
        self.post_message(self.QueueRefreshed())

    def _show_filter(self) -> None:
        """Describe the active filter above the table."""
        parts = [f"study={self.filter_study}"] if self.filter_study else []
        parts += [f"status={self.filter_status}"] if self.filter_status else []
        self.query_one("#queue-filter", Static).update("filter: " + " ".join(parts) if parts else "")

    def set_filter(self, study: str | None, status: str | None) -> None:
        """Show only jobs of a study and/or status (None = all)."""
        self.filter_study, self.filter_status = study, status
        self.query_one(JobTable).reset()
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
            self._command_done(f"{chosen[1]['label']}: {commands.cancel(self.app.db, chosen[0])}")

    def action_retry(self) -> None:
        """Queue the selected failed/cancelled job again."""
        if chosen := self._selected():
            self._command_done(f"{chosen[1]['label']}: {commands.retry(self.app.db, chosen[0])}")

    def action_priority(self, delta: int) -> None:
        """Raise or lower the selected job's priority."""
        if chosen := self._selected():
            new = commands.change_priority(self.app.db, chosen[0], int(chosen[1].get("priority") or 0), delta)
            chosen[1]["priority"] = new
            self._command_done(f"{chosen[1]['label']}: priority {new}")

    def action_toggle_pause(self) -> None:
        """Pause or resume the queue."""
        paused = not self.engine.get("paused", False)
        commands.set_paused(self.app.db, paused)
        self.engine["paused"] = paused
        self._command_done("queue paused: running jobs finish, no new ones start" if paused else "queue resumed")

    def action_logs(self) -> None:
        """Open the selected job's log."""
        from xaug.tui.screens.log import LogScreen

        if chosen := self._selected():
            self.app.push_screen(LogScreen(chosen[0]))

    def action_cycle_status(self) -> None:
        """Cycle the status filter: all -> queued -> running -> done -> failed -> cancelled -> all."""
        order = (None,) + views.JOB_STATUSES
        self.set_filter(self.filter_study, order[(order.index(self.filter_status) + 1) % len(order)])

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
            study, status = parse_filter(text, views.list_study_names(self.app.db))
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

    @work(thread=True, group="submit")
    def _submit(self, path: str) -> None:
        """Plan and submit in a worker (loading and planning may take a moment)."""
        db = self.app.open_writer()
        try:
            summary = commands.submit_recipe(db, path)
        except XaugError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="submit failed", severity="error", timeout=15)
            return
        finally:
            db.conn.close()
        self.app.call_from_thread(self._command_done, summary)
