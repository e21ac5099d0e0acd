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

from xaug.store import artifact_root
from xaug.store.analysis import (load_analysis, load_comparisons, load_correlations, load_headline,
                                 load_quality_summary)
from xaug.store.export import effect_with_ci, significant, write_table
from xaug.store.studies import study_classes
from xaug.tui.messages import StoreChanged

UTILITY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
DEFAULT_ALPHA = 0.05
"""Used only before a study has a stored analysis (then there is nothing to mark)."""
NOT_MEANINGFUL = "†"
"""Marks a quality value computed on too few images to be meaningful (`*` already marks significance)."""
EXPORT_COLUMNS = ["generator", "classifier", "amount", "reference", "metric", "class_name", "n", "unit", "mean",
                  "ci_low", "ci_high", "p_value", "p_adjusted", "test", "correction"]


def delta_cell(row: dict | None, scale: float = 100.0, alpha: float = DEFAULT_ALPHA, ci: bool = True) -> Text:
    """The change as `xaug report` writes it (store.export.effect_with_ci) plus ` *` when it is starred there too
    (adjusted p < alpha), green/red when so; a dim '-' without a row."""
    text = effect_with_ci(row, scale, ci)
    if not text:
        return Text("-", style="dim", justify="center")
    starred = significant(row, alpha)
    style = ("bold green" if row["mean"] > 0 else "bold red") if starred else ""
    return Text(text + (" *" if starred else "  "), style=style, justify="right")


def quality_vs_utility(quality: list[dict], headline: list[dict]) -> list[dict]:
    """Per generator: its overall FID against the training and held-out images (`quality`, `quality_heldout`),
    its pixel-space near-copy rate (`near_copies`), which of those were not meaningful (`not_meaningful`), and its
    stored headline change (`utility`, `ci_low`, `ci_high`, `p_adjusted`, `n`). `quality` is
    load_quality_summary's rows (the mean over units the report shows too); `headline` is one metric and
    reference of load_headline's overall rows. Nothing is computed here: stored rows are put side by side."""
    overall = {}
    for q in quality:
        if q["class_name"] == "" and (q["metric"] != "memorised_fraction" or q["features"] == "pixels"):
            overall.setdefault((q["generator"], q["metric"], q["reference"]), q)
    effects = {r["generator"]: r for r in headline if r["class_name"] == "" and r["mean"] is not None}
    rows = []
    for generator in sorted({g for g, _, _ in overall} & set(effects)):
        values = {name: overall.get((generator, metric, ref)) for name, metric, ref in (
            ("quality", "fid", "train"), ("quality_heldout", "fid", "heldout"),
            ("near_copies", "memorised_fraction", "train"))}
        effect = effects[generator]
        rows.append({"generator": generator, **{k: q and q["value"] for k, q in values.items()},
                     "not_meaningful": [k for k, q in values.items() if q and not q["meaningful"]],
                     "utility": effect["mean"], "ci_low": effect["ci_low"], "ci_high": effect["ci_high"],
                     "p_adjusted": effect["p_adjusted"], "n": effect["n"]})
    return rows


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
                yield Static("per-class ΔF1, points (classifiers x common amounts)", classes="caption")
                yield DataTable(id="class-deltas", cursor_type="none")
            with Vertical(id="qvu-box"):
                yield PlotextPlot(id="qvu")
                yield DataTable(id="qvu-table", cursor_type="none")
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
        """Read the current study's stored analysis: comparisons, headline, quality and correlations."""
        study, metric, reference = self.app.study, self.metric, self.reference
        data: dict = {"study": study, "metric": metric, "reference": reference}
        if study:
            db = self.app.open_reader()
            try:
                overall = load_comparisons(db, study, per_class=False)
                data["info"] = load_analysis(db, study) or {}
                data["choices"] = {"metrics": sorted({r["metric"] for r in overall}),
                                   "references": sorted({r["reference"] for r in overall})}
                data["rows"] = [r for r in overall if r["metric"] == metric and r["reference"] == reference]
                data["deltas"] = {}
                for row in load_headline(db, study, metric="f1", reference=reference, per_class=True):
                    data["deltas"].setdefault(row["generator"], {})[row["class_name"]] = row
                data["classes"] = study_classes(db, study)
                data["qvu"] = quality_vs_utility(load_quality_summary(db, study),
                                                 load_headline(db, study, metric=metric, reference=reference))
                data["correlations"] = load_correlations(db, study)
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
        self._fill_quality_table(points)
        lines = [f"{c['quality_metric']} vs {c['utility_metric']} ({c['method']}, n={c['n']}): r = {c['r']:+.2f}"
                 + (f" [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}]" if c.get("ci_low") is not None else "")
                 + (f"  p = {c['p_value']:.3g}" if c.get("p_value") is not None else "")
                 for c in correlations if c.get("r") is not None] or ["no correlations yet"]
        lines.append(f"near-copy %: synthetic images nearer a training image than the held-out threshold (pixels);"
                     f" FID: class macro-average, mean over units; {NOT_MEANINGFUL} = too few images")
        self.query_one("#correlations", Static).update("\n".join(lines))

    def _fill_quality_table(self, points: list[dict]) -> None:
        """Each generator's near-copy rate and FID against both references next to its utility (stored rows)."""
        table = self.query_one("#qvu-table", DataTable)
        table.clear(columns=True)
        # short headers and no CI (the matrix above has them): the table fits half of a 120-column terminal
        table.add_columns("generator", f"Δ vs {self.data.get('reference')[:4]}", "copy %", "FID train", "FID held")
        for p in points:
            table.add_row(p["generator"], delta_cell({**p, "mean": p["utility"]}, alpha=self.alpha, ci=False),
                          *[Text("-", style="dim") if p[k] is None else
                            Text(f"{p[k] * scale:.{d}f}" + (NOT_MEANINGFUL if k in p["not_meaningful"] else ""))
                            for k, scale, d in (("near_copies", 100, 2), ("quality", 1, 2),
                                                ("quality_heldout", 1, 2))])

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
        """Write the study's comparisons as CSV, Markdown and LaTeX (off the UI thread)."""
        study = self.app.study
        if not study:
            self.notify("no study to export", severity="warning")
            return
        self.app.write(lambda db: export_comparisons(db, self.app.db_path, study),
                       lambda text: self.notify(text, title="export", timeout=10), "export")


def export_comparisons(db, db_path, study: str) -> str:
    """Write a study's comparisons (overall and per class) as CSV, Markdown and LaTeX under
    `<artifact root>/exports/`; returns what was written, for a notification."""
    info = load_analysis(db, study) or {}
    unit = info.get("unit", "no stored analysis")
    label = unit.split("unit = ", 1)[-1]
    rows = [{**r, "unit": label}
            for r in load_comparisons(db, study, per_class=False) + load_comparisons(db, study, per_class=True)]
    confidence = f"{(1 - info.get('alpha', DEFAULT_ALPHA)) * 100:.0f}%"
    paths = write_table(artifact_root(db_path) / "exports", f"{study}-comparisons", EXPORT_COLUMNS, rows,
                        caption=f"Study {study}: change versus the reference arm (mean, {confidence} CI, paired "
                                f"test); {unit}")
    return "exported " + ", ".join(str(p) for p in paths)
