"""One job: live curves (log-scale toggle), log tail, resolved config, and either its sample grids with a step
slider (generators) or its per-class precision/recall/F1 and confusion matrix (classifiers)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Log, Static

from xaug.store import artifact_root, views
from xaug.tui.messages import ElapsedTicked, StoreChanged
from xaug.tui.screens.log import read_tail, resolve_log_path
from xaug.tui.widgets.curves import CurvePlot
from xaug.tui.widgets.images import Image, open_png
from xaug.tui.widgets.job_table import format_duration, progress_bar
from xaug.tui.widgets.step_slider import StepSlider

GENERATOR_KINDS = ("train_generator", "sample")
CLASSIFIER_KINDS = ("train_classifier", "evaluate")


def job_summary(job: dict) -> Text:
    """Title line: label, kind, status, progress, message, error."""
    text = Text(f"{job['label']}", style="bold")
    text.append(f"  {job['kind']}  {job['status']}  ")
    text.append_text(progress_bar(job.get("progress") or 0, job.get("progress_total") or 0,
                                  finished=job["status"] == "done"))
    if job.get("eta_s") and job["status"] == "running":
        text.append(f"  ETA {format_duration(job['eta_s'])}")
    if job.get("message"):
        text.append(f"  {job['message']}", style="italic")
    if job.get("slurm_job_id"):
        text.append(f"  Slurm job {job['slurm_job_id']} {job.get('slurm_state') or ''}".rstrip())
    if job.get("error"):
        text.append(f"\nerror: {job['error']}", style="bold red")
    return text


def confusion_cells(classes: list[str], matrix: list[list[int]]) -> list[list[Text]]:
    """Confusion rows as styled cells: the diagonal green, off-diagonal counts shaded by their share of the row."""
    rows = []
    for i, counts in enumerate(matrix):
        total = sum(counts) or 1
        cells = []
        for j, count in enumerate(counts):
            if i == j:
                style = "bold green"
            elif count:
                style = "bold red" if count / total >= 0.2 else "yellow"
            else:
                style = "dim"
            cells.append(Text(str(count), style=style, justify="right"))
        rows.append([Text(classes[i], style="bold")] + cells)
    return rows


class JobDetailScreen(Screen):
    """Detail of one job; re-read when the store changes."""

    BINDINGS = [
        ("escape,q", "app.pop_screen", "Back"),
        ("y", "toggle_log_scale", "Log y"),
        ("a", "toggle_all_curves", "All curves"),
        ("k", "toggle_config", "Config/log"),
        Binding("left", "step(-1)", "Step-", priority=True),
        Binding("right", "step(1)", "Step+", priority=True),
    ]

    class DetailFetched(Message):
        """A worker read the job's rows."""

        def __init__(self, data: dict) -> None:
            super().__init__()
            self.data = data

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.job: dict | None = None
        self.grids: list[dict] = []
        self.log_offset = 0
        self.showing_config = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="job-summary")
        with Horizontal(id="detail-body"):
            with Vertical(id="detail-left"):
                yield CurvePlot(id="curves")
                yield Log(id="log-tail", highlight=True)
                yield Static("", id="config", classes="hidden")
            with Vertical(id="detail-right"):
                yield Static("", id="results")
                yield StepSlider(id="step-slider")
                with Container(id="grid-box", classes="image-box"):
                    yield Image(id="grid-image")
                yield DataTable(id="class-table", cursor_type="none", zebra_stripes=True)
                yield Static("confusion (rows: true, columns: predicted)", id="confusion-title")
                yield DataTable(id="confusion", cursor_type="none")
        yield Footer()

    def on_mount(self) -> None:
        """First read."""
        self.load()

    @on(StoreChanged)
    def _store_changed(self) -> None:
        self.load()

    @on(ElapsedTicked)
    def _tick(self) -> None:
        self._follow_log()

    @work(thread=True, exclusive=True, group="detail-read")
    def load(self) -> None:
        """Read everything the screen shows, in a worker on a read-only connection."""
        db = views.open_reader(self.app.db_path)
        try:
            job = views.load_job_row(db, self.key)
            data: dict = {"job": job}
            if job is not None:
                data["series"] = views.curve_series(db, self.key)
                data["curves_of"] = None
                if not data["series"] and job["kind"] == "evaluate":  # its curves are the training run's
                    trained = views.dependency_of_kind(db, self.key, "train_classifier")
                    data["series"] = views.curve_series(db, trained) if trained else {}
                    data["curves_of"] = "train_classifier"
                data["results"] = views.job_results(db, self.key)
                data["grids"] = views.list_grids(db, self.key) if job["kind"] in GENERATOR_KINDS else []
                eval_key = views.evaluation_key(db, self.key) if job["kind"] in CLASSIFIER_KINDS else None
                data["classes"] = views.class_table(db, eval_key) if eval_key else []
                data["confusion"] = views.confusion_table(db, eval_key) if eval_key else ([], [])
                if eval_key and eval_key != self.key:
                    data["results"] = {**data["results"], **views.job_results(db, eval_key)}
        finally:
            db.conn.close()
        self.post_message(self.DetailFetched(data))

    def on_job_detail_screen_detail_fetched(self, message: DetailFetched) -> None:
        """Show what the worker read."""
        job = message.data["job"]
        if job is None:
            self.query_one("#job-summary", Static).update(f"job {self.key[:12]} is not in the store")
            return
        first = self.job is None
        self.job = job
        self.sub_title = f"{job['kind']}: {job['label']}"
        self.query_one("#job-summary", Static).update(job_summary(job))
        series = message.data["series"]
        title = "curves" if series else "no curves recorded yet"
        if message.data.get("curves_of"):
            title += f" of its {message.data['curves_of']}"
        self.query_one(CurvePlot).show(series, title=title)
        results = message.data["results"]
        self.query_one("#results", Static).update(
            "  ".join(f"{k} {v:.4g}" for k, v in results.items()) if results else "")
        is_generator = job["kind"] in GENERATOR_KINDS
        for widget_id in ("#step-slider", "#grid-box"):
            self.query_one(widget_id).display = is_generator
        for widget_id in ("#class-table", "#confusion-title", "#confusion"):
            self.query_one(widget_id).display = job["kind"] in CLASSIFIER_KINDS
        if is_generator:
            self.grids = message.data["grids"]
            self.query_one(StepSlider).set_steps([g["step"] for g in self.grids])
        else:
            self._show_classes(message.data["classes"], *message.data["confusion"])
        if first:
            self.query_one("#config", Static).update(json.dumps(job["config"], indent=2, sort_keys=True))
        self._follow_log()

    def _show_classes(self, classes: list[dict], names: list[str], matrix: list[list[int]]) -> None:
        """Fill the per-class table and the confusion matrix."""
        table = self.query_one("#class-table", DataTable)
        table.clear(columns=True)
        table.add_columns("class", "precision", "recall", "F1", "AUROC", "support")
        for row in classes:
            table.add_row(row["class_name"], f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
                          "" if row["auroc"] is None else f"{row['auroc']:.3f}", str(row["support"]))
        confusion = self.query_one("#confusion", DataTable)
        confusion.clear(columns=True)
        confusion.add_columns("true \\ pred", *names)
        for cells in confusion_cells(names, matrix):
            confusion.add_row(*cells)

    def _follow_log(self) -> None:
        """Append new log lines to the tail pane."""
        if self.job is None:
            return
        path = resolve_log_path(Path(self.app.db_path), self.job.get("log_path"))
        text, self.log_offset = read_tail(path, self.log_offset)
        if text:
            self.query_one("#log-tail", Log).write(text)

    def on_step_slider_step_changed(self, message: StepSlider.StepChanged) -> None:
        """Show the grid at the chosen step."""
        if self.grids and 0 <= message.index < len(self.grids):
            self._load_grid(self.grids[message.index]["path"])

    @work(thread=True, exclusive=True, group="grid")
    def _load_grid(self, relative: str) -> None:
        """Decode the grid PNG off the UI thread."""
        image = open_png(artifact_root(self.app.db_path), relative)
        self.app.call_from_thread(setattr, self.query_one("#grid-image", Image), "image", image)

    def action_step(self, delta: int) -> None:
        """Left/right: move the step slider."""
        self.query_one(StepSlider).move(delta)

    def action_toggle_log_scale(self) -> None:
        """Switch the curves' y axis between linear and log."""
        plot = self.query_one(CurvePlot)
        plot.log_scale = not plot.log_scale

    def action_toggle_all_curves(self) -> None:
        """Show every recorded curve (lr, accuracy, ADA p...) or only the losses."""
        plot = self.query_one(CurvePlot)
        plot.all_series = not plot.all_series

    def action_toggle_config(self) -> None:
        """Show the resolved config in place of the log tail, or back."""
        self.showing_config = not self.showing_config
        self.query_one("#config").set_class(not self.showing_config, "hidden")
        self.query_one("#log-tail").set_class(self.showing_config, "hidden")
