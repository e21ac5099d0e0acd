"""A study's results: generator x classifier x amount deltas versus the baseline (mean, CI, significance),
per-class F1 deltas, and image quality versus utility with its correlation; export to CSV/Markdown/LaTeX.

Everything shown is the study's stored analysis (written by its analyse job): this screen computes no statistic,
and marks significance at the alpha the analysis used."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual_plotext import PlotextPlot

from xaug.store import views
from xaug.tui.messages import StoreChanged

UTILITY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
DEFAULT_ALPHA = 0.05
"""Used only before a study has a stored analysis (then there is nothing to mark)."""


def delta_cell(row: dict | None, scale: float = 100.0, alpha: float = DEFAULT_ALPHA, ci: bool = True) -> Text:
    """`+1.23 [-0.40, 2.86] *` in percentage points (without the CI when `ci` is False); green/red when
    significant, a star for p_adjusted < alpha."""
    if row is None or row.get("mean") is None:
        return Text("-", style="dim", justify="center")
    mean = row["mean"] * scale
    text = f"{mean:+.2f}"
    if ci and row.get("ci_low") is not None and row.get("ci_high") is not None:
        text += f" [{row['ci_low'] * scale:+.2f},{row['ci_high'] * scale:+.2f}]"
    p = row.get("p_adjusted") if row.get("p_adjusted") is not None else row.get("p_value")
    significant = p is not None and p < alpha
    text += " *" if significant else "  "
    style = ("bold green" if mean > 0 else "bold red") if significant else ""
    return Text(text, style=style, justify="right")


def matrix_rows(rows: list[dict]) -> tuple[list[int], list[tuple[str, str, list[dict | None]]]]:
    """Comparison rows -> (amounts, [(generator, classifier, row per amount)])."""
    amounts = sorted({r["amount"] for r in rows})
    arms: dict[tuple[str, str], dict[int, dict]] = {}
    for r in rows:
        arms.setdefault((r["generator"], r["classifier"]), {})[r["amount"]] = r
    return amounts, [(g, c, [cells.get(a) for a in amounts]) for (g, c), cells in sorted(arms.items())]


def _padded(low: float, high: float, bottom: float = 0.1, top: float = 0.1) -> tuple[float, float]:
    """An axis range around [low, high] with margins (fractions of the span; 1.0 when the span is zero)."""
    span = (high - low) or 1.0
    return low - bottom * span, high + top * span


class StudyScreen(Screen):
    """The comparison matrix of the current study and its side panels."""

    BINDINGS = [
        ("m", "cycle_metric", "Metric"),
        ("b", "cycle_reference", "Reference"),
        ("n", "app.next_study", "Next study"),
        ("e", "export", "Export"),
    ]

    class StudyFetched(Message):
        """A worker read the study's analysis rows."""

        def __init__(self, data: dict) -> None:
            super().__init__()
            self.data = data

    def __init__(self) -> None:
        super().__init__()
        self.metric = UTILITY_METRICS[0]
        self.reference = "baseline"
        self.data: dict = {}
        self.alpha = DEFAULT_ALPHA

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="study-title")
        yield DataTable(id="matrix", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="study-lower"):
            with Vertical(id="class-deltas-box"):
                yield Static("per-class F1 change, points (over classifiers x common amounts)", classes="caption")
                yield DataTable(id="class-deltas", cursor_type="none")
            with Vertical(id="qvu-box"):
                yield PlotextPlot(id="qvu")
                yield Static("", id="correlations")
        yield Footer()

    def on_mount(self) -> None:
        """Follow the app's current study."""
        self.watch(self.app, "study", lambda _: self.load(), init=False)
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    @on(StoreChanged)
    def _store_changed(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="study-read")
    def load(self) -> None:
        """Read comparisons, deltas, quality and correlations of the current study."""
        study, metric, reference = self.app.study, self.metric, self.reference
        data: dict = {"study": study, "metric": metric, "reference": reference}
        if study:
            db = views.open_reader(self.app.db_path)
            try:
                data["info"] = views.study_analysis_info(db, study) or {}
                data["choices"] = views.comparison_choices(db, study)
                data["rows"] = views.comparison_rows(db, study, metric=metric, reference=reference)
                data["deltas"] = views.class_f1_deltas(db, study, reference)
                data["classes"] = views.study_classes(db, study)
                data["qvu"] = views.quality_vs_utility(db, study, "fid", metric, reference)
                data["correlations"] = views.list_correlations(db, study)
            finally:
                db.conn.close()
        self.post_message(self.StudyFetched(data))

    def on_study_screen_study_fetched(self, message: StudyFetched) -> None:
        """Fill the matrix, the per-class deltas, the quality-vs-utility plot and the correlations."""
        data = self.data = message.data
        title = self.query_one("#study-title", Static)
        if not data["study"]:
            title.update("no study in the store yet: submit a recipe (n on the queue screen)")
            return
        self.sub_title = f"study {data['study']}"
        info = data.get("info") or {}
        self.alpha = info.get("alpha", DEFAULT_ALPHA)
        unit = info.get("unit", "no stored analysis yet")
        title.update(Text.assemble(("study ", "dim"), (data["study"], "bold"), ("  metric ", "dim"),
                                   (data["metric"], "bold"), ("  vs ", "dim"), (data["reference"], "bold"),
                                   (f"   cells: change in points, [{(1 - self.alpha) * 100:.0f}% CI], * = adjusted "
                                    f"p < {self.alpha:g}\n", "dim"), (unit, "")))
        self._fill_matrix(data["rows"])
        self._fill_deltas(data["deltas"], data["classes"])
        self._fill_quality(data["qvu"], data["correlations"])

    def _fill_matrix(self, rows: list[dict]) -> None:
        table = self.query_one("#matrix", DataTable)
        table.clear(columns=True)
        amounts, arms = matrix_rows(rows)
        table.add_columns("generator", "classifier", *[f"+{a}/class" for a in amounts])
        for generator, classifier, cells in arms:
            table.add_row(generator, classifier, *[delta_cell(c, alpha=self.alpha) for c in cells])
        if not arms:
            table.add_row(Text("no comparisons yet (the analyse job has not run)", style="dim"), "")

    def _fill_deltas(self, deltas: dict, classes: list[str]) -> None:
        table = self.query_one("#class-deltas", DataTable)
        table.clear(columns=True)
        names = classes or sorted({c for per in deltas.values() for c in per})
        table.add_columns("generator", *names)
        for generator, per in sorted(deltas.items()):
            table.add_row(generator, *[delta_cell(per.get(c), alpha=self.alpha, ci=False) if c in per else Text("-")
                                       for c in names])

    def _fill_quality(self, points: list[dict], correlations: list[dict]) -> None:
        plot = self.query_one("#qvu", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"FID vs change in {self.data.get('metric')}")
        plt.xlabel("FID (lower = better images)")
        plt.ylabel("change (points)")
        for point in points:
            plt.scatter([point["quality"]], [point["utility"] * 100], label=point["generator"], marker="●")
        if points:  # pad the axes so no point hides under the legend or on the frame
            xs, ys = [p["quality"] for p in points], [p["utility"] * 100 for p in points]
            plt.xlim(*_padded(min(xs), max(xs)))
            plt.ylim(*_padded(min(ys), max(ys), top=0.35))
        plot.refresh()
        lines = [f"{c['quality_metric']} vs {c['utility_metric']} ({c['method']}, n={c['n']}): r = {c['r']:+.2f}"
                 + (f" [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}]" if c.get("ci_low") is not None else "")
                 + (f"  p = {c['p_value']:.3g}" if c.get("p_value") is not None else "")
                 for c in correlations if c.get("r") is not None]
        self.query_one("#correlations", Static).update("\n".join(lines) or "no correlations yet")

    def _cycle(self, options: list, current):
        """The option after `current` (wrapping), or `current` when there is nothing to cycle."""
        if not options:
            return current
        return options[(options.index(current) + 1) % len(options)] if current in options else options[0]

    def action_cycle_metric(self) -> None:
        """Show the next utility metric (accuracy, balanced accuracy, macro F1)."""
        known = [m for m in UTILITY_METRICS if m in self.data.get("choices", {}).get("metrics", UTILITY_METRICS)]
        self.metric = self._cycle(known or list(UTILITY_METRICS), self.metric)
        self.load()

    def action_cycle_reference(self) -> None:
        """Compare against the next reference arm (baseline, duplicate control)."""
        self.reference = self._cycle(self.data.get("choices", {}).get("references", []), self.reference)
        self.load()

    def action_export(self) -> None:
        """Write the study's comparisons as CSV, Markdown and LaTeX."""
        study = self.app.study
        if not study:
            self.notify("no study to export", severity="warning")
            return
        paths = views.export_comparisons(self.app.db, self.app.db_path, study)
        self.notify("exported " + ", ".join(str(p) for p in paths), title="export", timeout=10)
