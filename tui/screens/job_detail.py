"""One job: live curves (EMA smoothing, log scale, zoom to the last N steps; for a classifier, the overlay of every
arm of its classifier x fold), log tail, resolved config, and either its sample grids with a step slider
(generators) or its per-class precision/recall/F1 and confusion matrix (classifiers)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Log, Static

from xaug.store import artifact_root
from xaug.store.analysis import load_study_training_curves
from xaug.store.artifacts import load_artifacts
from xaug.store.jobs import classifier_name, job_studies, load_fold_evaluation, load_job, load_job_deps
from xaug.store.metrics import load_class_metrics, load_confusion, load_metrics, load_results
from xaug.store.results import arm_label
from xaug.tui.messages import ElapsedTicked, StoreChanged
from xaug.tui.screens.log import read_tail, resolve_log_path
from xaug.tui.widgets.curves import SMOOTHING_STEP, CurvePlot, Series, curves_from_points
from xaug.tui.widgets.images import ImagePane, open_png
from xaug.tui.widgets.job_table import format_duration, progress_bar
from xaug.tui.widgets.step_slider import StepSlider

GENERATOR_KINDS = ("train_generator", "sample")
CLASSIFIER_KINDS = ("train_classifier", "evaluate")
OVERLAYS = (None, "val_loss", "val_accuracy")
"""The overlay key cycles: this job's own curves, then every arm's validation loss, then validation accuracy."""


def related_of_kind(related: dict[str, dict], kind: str) -> dict | None:
    """The first of some jobs (dependencies, by key) of one kind."""
    return next((job for _, job in sorted(related.items()) if job["kind"] == kind), None)


def arm_curves(db, study: str, trained: dict, metric: str) -> Series:
    """`metric` of every arm trained with the same classifier, fold, repeat and seed as `trained` (a
    train_classifier job): baseline, each generator x amount and the duplicate control, named by arm."""
    config = trained["config"]
    series: Series = {}
    for job in load_study_training_curves(db, study, (metric,), classifier=classifier_name(config.get("classifier")),
                                          fold=config.get("fold")):
        if job["repeat"] == int(config.get("repeat") or 0) and job["seed"] == config.get("seed"):
            points = job["curves"].get(metric, [])
            series[arm_label(job)] = ([p[0] for p in points], [p[1] for p in points])
    return series


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
        ("left_square_bracket", "smooth(-1)", "Smooth-"),
        ("right_square_bracket", "smooth(1)", "Smooth+"),
        ("z", "zoom", "Last N"),
        ("o", "overlay", "Arms"),
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
        self.overlay: str | None = None
        """None: this job's curves; else the validation metric overlaid for every arm of its classifier x fold."""

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
                yield ImagePane(image_id="grid-image", id="grid-box", classes="image-box")
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
        overlay, study = self.overlay, self.app.study
        db = self.app.open_reader()
        try:
            job = load_job(db, self.key)
            data: dict = {"job": job, "overlay": overlay}
            if job is not None:
                data.update(self._read_job(db, job, overlay, study))
        finally:
            db.conn.close()
        self.post_message(self.DetailFetched(data))

    def _read_job(self, db, job: dict, overlay: str | None, study: str | None) -> dict:
        """Curves, results, grids and per-class metrics of a job (a classifier's from its evaluate job)."""
        data: dict = {"series": curves_from_points(load_metrics(db, self.key)), "curves_of": None,
                      "results": load_results(db, self.key), "classes": [], "confusion": ([], [])}
        trained = evaluation = None
        if job["kind"] == "evaluate":
            trained, evaluation = related_of_kind(load_job_deps(db, self.key), "train_classifier"), job
        elif job["kind"] == "train_classifier":
            trained, evaluation = job, load_fold_evaluation(db, self.key)
        if not data["series"] and trained is not None and trained is not job:  # its curves are the training run's
            data["series"] = curves_from_points(load_metrics(db, trained["key"]))
            data["curves_of"] = "train_classifier"
        studies = job_studies(db, self.key)
        if overlay and trained is not None and studies:
            data["series"] = arm_curves(db, study if study in studies else studies[0], trained, overlay)
            data["curves_of"] = f"{overlay}, every arm of this classifier x fold"
        data["grids"] = load_artifacts(db, self.key, kind="grid") if job["kind"] in GENERATOR_KINDS else []
        if evaluation is not None:
            classes = load_class_metrics(db, evaluation["key"])
            names = [row["class_name"] for row in classes]
            data.update(classes=classes, confusion=(names, load_confusion(db, evaluation["key"], names)))
            if evaluation is not job:
                data["results"] = {**data["results"], **load_results(db, evaluation["key"])}
        return data

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
            title += (f": {message.data['curves_of']}" if message.data["overlay"]
                      else f" of its {message.data['curves_of']}")
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
        self.app.call_from_thread(self.query_one("#grid-box", ImagePane).show, image)

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

    def action_smooth(self, direction: int) -> None:
        """[ and ]: less or more EMA smoothing."""
        self.query_one(CurvePlot).smooth_more(direction * SMOOTHING_STEP)

    def action_zoom(self) -> None:
        """Show only the last N steps (each press a shorter span, then all again)."""
        self.query_one(CurvePlot).next_zoom()

    def action_overlay(self) -> None:
        """Overlay the validation loss, then the validation accuracy, of every arm of this classifier x fold
        (baseline, each generator x amount, duplicate control), then back to this job's curves."""
        if self.job is None or self.job["kind"] not in CLASSIFIER_KINDS:
            self.notify("the arm overlay is for classifier jobs", severity="warning")
            return
        self.overlay = OVERLAYS[(OVERLAYS.index(self.overlay) + 1) % len(OVERLAYS)]
        self.load()

    def action_toggle_config(self) -> None:
        """Show the resolved config in place of the log tail, or back."""
        self.showing_config = not self.showing_config
        self.query_one("#config").set_class(not self.showing_config, "hidden")
        self.query_one("#log-tail").set_class(self.showing_config, "hidden")
