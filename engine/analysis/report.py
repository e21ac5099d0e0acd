"""A study's report: tables (CSV, Markdown, LaTeX) and PNG figures in one folder, from what is in the store.

Everything statistical is read from the study's stored analysis (written once by the `analyse` job); the report
formats it. Tables: the comparison matrix (every generator x classifier x amount against the baseline and the
duplicate control), the headline generator effects, baseline performance, per-class F1 changes, image quality against
the training and held-out references, each generator's near-copy rate next to its utility, the quality-vs-utility
correlations, a power plan, and with dataset.external_test every arm's performance on the external test set. Every
table states n and what one unit is. Figures: per-class F1
changes with CIs, quality vs utility, classifier loss curves.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sqlite_utils

from xaug.engine.analysis.compare import DUPLICATE, METRICS
from xaug.engine.analysis.power import METHOD as POWER_METHOD
from xaug.engine.analysis.power import per_test_alpha, required_repeats
from xaug.engine.analysis.stats import unit_label
from xaug.engine.analysis.study import UTILITY, StudyAnalysis, load_study_analysis
from xaug.store.analysis import load_quality_summary, load_study_training_curves
from xaug.store.export import ci_text, effect_with_ci, p_text, signed_pp, significant, write_table

REFERENCE_ORDER = ("train", "heldout")
REFERENCE_LABELS = {"train": "train", "heldout": "held-out"}
METRIC_LABELS = {"accuracy": "acc", "balanced_accuracy": "bal.acc", "macro_f1": "macro-F1"}
POWER_EFFECTS = (0.01, 0.02, 0.05)
"""Effects (fractions) the report's power table plans for."""
POWER_TARGET = 0.8


@dataclass
class Report:
    """What `build_report` wrote, and the key tables to print."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    key_columns: list[str] = field(default_factory=list)
    key_rows: list[dict] = field(default_factory=list)
    effect_rows: list[dict] = field(default_factory=list)
    power_rows: list[dict] = field(default_factory=list)
    note: str = ""
    unit: str = ""
    """'n = 3 units; unit = fold (seeds averaged within a fold)'."""
    alpha: float = 0.05


def build_report(db: sqlite_utils.Database, study: str, out_dir: Path) -> Report:
    """Read a study's stored analysis and write its tables and figures into `out_dir`."""
    out_dir = Path(out_dir)
    result = load_study_analysis(db, study)  # raises for an unknown study before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    alpha = result.analysis.alpha
    report = Report(out_dir, note=result.note, unit=result.unit, alpha=alpha)
    ci = f"{_pct(1 - alpha)} CI"

    columns, rows = comparison_matrix(result)
    report.key_columns, report.key_rows = columns, rows
    report.files += write_table(out_dir, "comparisons", columns, rows,
                                f"{study}: change vs the real-only baseline and vs the duplicate-real control, in "
                                f"percentage points, mean [{ci}] over units. {result.note}")
    long_cols = ["generator", "classifier", "amount", "reference", "metric", "class_name", "n", "unit", "mean",
                 "sd", "ci_low", "ci_high", "statistic", "p_value", "p_adjusted", "test", "correction"]
    report.files += write_table(out_dir, "comparisons_long", long_cols, _with_unit(result, result.comparisons),
                                f"{study}: every comparison (fractions, not percentage points). {result.note}")
    columns, report.effect_rows = effects_table(result)
    report.files += write_table(out_dir, "generator_effects", columns, report.effect_rows,
                                f"{study}: headline, change per generator averaged over classifiers and the amounts "
                                f"common to all generators (+{result.info.get('amounts') or '-'} per class), vs the "
                                f"baseline and vs the duplicate control (pp, mean [{ci}]); p adjusted across "
                                f"generators. {result.note}")
    columns, rows = baseline_table(result)
    report.files += write_table(out_dir, "baseline", columns, rows,
                                f"{study}: real-only baseline, mean (SD) over units. {result.unit}")
    columns, rows = external_table(result)
    if rows:
        report.files += write_table(out_dir, "external", columns, rows,
                                    f"{study}: every arm on the external test set (the images dataset.subsample did"
                                    " not draw), mean (SD) over units; it never took part in model selection or in"
                                    f" the tests above. {result.unit}")
    columns, rows = class_f1_table(result)
    report.files += write_table(out_dir, "class_f1", columns, rows,
                                f"{study}: change in per-class F1 vs the baseline (x100), mean [{ci}]; "
                                f"* adjusted p < {alpha}. {result.unit}")
    summary = load_quality_summary(db, study)
    columns, rows = quality_table(summary)
    report.files += write_table(out_dir, "quality", columns, rows,
                                f"{study}: image quality per generator and class against the training images and "
                                "against held-out (validation) images, both at one resolution; mean over units; "
                                "n_real/n_fake = images per set; class 'all' = the macro-average of the "
                                "meaningful per-class values; * = not meaningful (too few images; see notes); "
                                "memorised % = synthetic images closer to a training image than the near-copy "
                                "threshold (pixels)")
    columns, rows = quality_utility_table(result, summary)
    report.files += write_table(out_dir, "quality_vs_utility", columns, rows,
                                f"{study}: near-copy rate and image quality of each generator next to its utility "
                                f"(headline change over classifiers and common amounts, pp, mean [{ci}], p "
                                f"adjusted across generators); quality is the macro-average over classes, mean "
                                f"over units; * = not meaningful. {result.note}")
    columns, rows = correlation_table(result)
    report.files += write_table(out_dir, "correlations", columns, rows,
                                f"{study}: correlation of image quality with utility (Fisher-z {ci}); n = "
                                "generators, or generator x unit")
    columns, report.power_rows = power_table(result)
    report.files += write_table(out_dir, "power", columns, report.power_rows,
                                f"{study}: repeats of {_folds(result)}-fold cross-validation needed for "
                                f"{POWER_TARGET:.0%} power to detect a change in accuracy vs the baseline, from "
                                f"this study's SD of unit differences; {POWER_METHOD}; alpha divided by the number "
                                f"of generators under the {result.analysis.correction} correction. {result.unit}")
    report.files += write_figures(db, result, summary, out_dir)
    return report


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def _folds(result: StudyAnalysis) -> int:
    """k of the study's k-fold split (units per repeat)."""
    return max(1, int(result.info.get("n_units") or 0) // max(1, int(result.info.get("repeats") or 1)))


def _unit_column(result: StudyAnalysis) -> str:
    return unit_label(int(result.info.get("repeats") or 1))


def _with_unit(result: StudyAnalysis, rows: list[dict]) -> list[dict]:
    unit = _unit_column(result)
    return [{**r, "unit": unit} for r in rows]


def _arm_order(generator: str) -> tuple:
    return (generator == DUPLICATE, generator)


def comparison_matrix(result: StudyAnalysis) -> tuple[list[str], list[dict]]:
    """One row per generator x classifier x amount: accuracy, balanced accuracy and macro F1 vs the baseline, and
    accuracy vs the duplicate control, each with CI and adjusted p; n units and what a unit is."""
    index = {(r["generator"], r["classifier"], r["amount"], r["reference"], r["metric"], r["class_name"]): r
             for r in result.comparisons}
    arms = sorted({(r["generator"], r["classifier"], r["amount"]) for r in result.comparisons},
                  key=lambda a: (_arm_order(a[0]), a[1], a[2]))
    columns = ["generator", "classifier", "amount", "n", "unit", "Δacc vs baseline", "p_adj", "Δbal.acc vs baseline",
               "p_adj (bal.acc)", "Δmacro-F1 vs baseline", "p_adj (F1)", "Δacc vs duplicate", "p_adj (dup)"]
    unit = _unit_column(result)
    rows = []
    for gen, clf, amount in arms:
        acc = index.get((gen, clf, amount, "baseline", "accuracy", ""))
        bal = index.get((gen, clf, amount, "baseline", "balanced_accuracy", ""))
        f1 = index.get((gen, clf, amount, "baseline", "macro_f1", ""))
        dup = index.get((gen, clf, amount, "duplicate", "accuracy", ""))
        rows.append({"generator": gen, "classifier": clf, "amount": amount,
                     "n": (acc or bal or f1 or dup or {}).get("n"), "unit": unit,
                     "Δacc vs baseline": effect_with_ci(acc), "p_adj": p_text((acc or {}).get("p_adjusted")),
                     "Δbal.acc vs baseline": effect_with_ci(bal),
                     "p_adj (bal.acc)": p_text((bal or {}).get("p_adjusted")),
                     "Δmacro-F1 vs baseline": effect_with_ci(f1), "p_adj (F1)": p_text((f1 or {}).get("p_adjusted")),
                     "Δacc vs duplicate": effect_with_ci(dup), "p_adj (dup)": p_text((dup or {}).get("p_adjusted"))})
    return columns, rows


def effects_table(result: StudyAnalysis) -> tuple[list[str], list[dict]]:
    """The headline: each generator's change in accuracy, balanced accuracy and macro-F1 over classifiers and the
    common amounts, vs the baseline and vs the duplicate control, with CI, p and p adjusted across generators."""
    ci = f"{_pct(1 - result.analysis.alpha)} CI"
    columns = ["generator", "reference", "metric", "n", "unit", "Δ (pp)", ci, "p", "p_adj", "test", "amounts"]
    unit = _unit_column(result)
    rows = []
    overall = [r for r in result.headline if r["class_name"] == "" and r["metric"] in METRICS]
    for r in sorted(overall, key=lambda r: (r["reference"] != "baseline", METRICS.index(r["metric"]),
                                            _arm_order(r["generator"]))):
        rows.append({"generator": r["generator"], "reference": r["reference"], "metric": r["metric"],
                     "n": r["n"], "unit": unit, "Δ (pp)": signed_pp(r["mean"]),
                     ci: ci_text(r),
                     "p": p_text(r["p_value"]), "p_adj": p_text(r["p_adjusted"]), "test": r["test"],
                     "amounts": r["amounts"]})
    return columns, rows


def baseline_table(result: StudyAnalysis) -> tuple[list[str], list[dict]]:
    """Absolute performance of the real-only baseline per classifier: mean (SD) over units, from arm_summaries."""
    rows = [r for r in result.arm_summaries if r["arm"] == "baseline"]
    return _performance_table(result, rows, lambda r: {"classifier": r["classifier"]})


def external_table(result: StudyAnalysis) -> tuple[list[str], list[dict]]:
    """Absolute performance of every arm on the external test set (dataset.external_test): mean (SD) over units."""
    return _performance_table(result, result.external_summaries, lambda r: {
        "classifier": r["classifier"], "arm": r["arm"], "generator": r["generator"], "amount": r["amount"]})


def _performance_table(result: StudyAnalysis, summaries: list[dict], group) -> tuple[list[str], list[dict]]:
    """One row per group of arm_summaries rows (`group(row)` -> the row's key columns): n, unit, accuracy,
    balanced accuracy, macro-F1 and per-class F1 as mean (SD)."""
    cells: dict = defaultdict(dict)
    keys: dict = {}
    for r in summaries:
        if r["class_name"] == "" or r["metric"] == "f1":
            key = tuple(group(r).items())
            name = r["metric"] if r["class_name"] == "" else f"F1 {r['class_name']}"
            cells[key][name] = _mean_sd(r)
            keys[key] = {**group(r), "n": r["n"]}
    key_columns = list(group(summaries[0])) if summaries else ["classifier"]
    columns = [*key_columns, "n", "unit", "accuracy", "balanced_accuracy", "macro_f1",
               *[f"F1 {c}" for c in result.classes]]
    unit = _unit_column(result)
    return columns, [{**keys[key], "unit": unit, **cells[key]} for key in sorted(cells, key=_arm_key)]


def _arm_key(key: tuple) -> tuple:
    """Sort key of a group: classifier, then baseline, synthetic arms by generator and amount, duplicates."""
    values = dict(key)
    arm_rank = {"baseline": 0, "synthetic": 1, "duplicate": 2}.get(values.get("arm", "baseline"), 3)
    return (values["classifier"], arm_rank, values.get("generator") or "", values.get("amount", 0))


def _mean_sd(row: dict) -> str:
    if row.get("mean") is None:
        return ""
    return f"{row['mean']:.3f} ({row['sd']:.3f})" if row.get("sd") is not None else f"{row['mean']:.3f}"


def class_f1_table(result: StudyAnalysis) -> tuple[list[str], list[dict]]:
    """Change in per-class F1 (x100) vs the baseline for every arm, starred when the adjusted p < alpha."""
    index = {(r["generator"], r["classifier"], r["amount"], r["class_name"]): r
             for r in result.comparisons if r["reference"] == "baseline" and r["metric"] == "f1"}
    arms = sorted({k[:3] for k in index}, key=lambda a: (_arm_order(a[0]), a[1], a[2]))
    columns = ["generator", "classifier", "amount", "n", "unit", *result.classes]
    unit = _unit_column(result)
    rows = []
    for arm in arms:
        row = {"generator": arm[0], "classifier": arm[1], "amount": arm[2], "unit": unit}
        for c in result.classes:
            r = index.get((*arm, c))
            if r is not None:
                row["n"] = r["n"]
            star = "*" if significant(r, result.analysis.alpha) else ""
            row[c] = effect_with_ci(r) + star
        rows.append(row)
    return columns, rows


def power_table(result: StudyAnalysis, effects: tuple[float, ...] = POWER_EFFECTS) -> tuple[list[str], list[dict]]:
    """Per generator (accuracy vs the baseline): the pilot's n and SD of unit differences, and the repeats
    (units = folds x repeats) needed for each planned effect."""
    rows_in = [r for r in result.headline if r["reference"] == "baseline" and r["metric"] == "accuracy"
               and r["class_name"] == "" and r["sd"] is not None]
    folds = _folds(result)
    ratio = result.info.get("test_train_ratio") or 0.0
    alpha = per_test_alpha(result.analysis.alpha, result.analysis.correction, len(rows_in))
    columns = ["generator", "n", "unit", "SD (pp)", *[f"+{e * 100:g} pp: repeats (units)" for e in effects]]
    rows = []
    for r in sorted(rows_in, key=lambda r: _arm_order(r["generator"])):
        row = {"generator": r["generator"], "n": r["n"], "unit": _unit_column(result),
               "SD (pp)": f"{r['sd'] * 100:.2f}"}
        for e in effects:
            plan = required_repeats(e, r["sd"], folds, ratio, alpha, POWER_TARGET)
            row[f"+{e * 100:g} pp: repeats (units)"] = (f"{plan.repeats} ({plan.units})" if plan.repeats
                                                        else f"unreachable (max power {plan.power:.2f})")
        rows.append(row)
    return columns, rows


def quality_table(summary: list[dict]) -> tuple[list[str], list[dict]]:
    """Image quality per generator, class ('all' = the macro-average of the meaningful per-class values), feature
    space and reference (the fold's training images, and held-out validation images), mean over units, from
    `load_quality_summary`. A value marked * was not meaningful (too few images); `notes` says why.

    MS-SSIM of synthetic pairs (pixels, no reference) repeats on both references' rows; MS-SSIM of real pairs is
    its yardstick from that reference; the memorised fraction (pixel-space near-copies of training images) is on
    the training rows."""
    cells = {(q["generator"], q["class_name"] or "all", q["reference"], q["metric"], q["features"]): q
             for q in summary}
    row_keys = sorted({(g, c, ref, feats) for g, c, ref, metric, feats in cells if metric == "fid"},
                      key=lambda k: (k[0], k[1] != "all", k[1], k[3], REFERENCE_ORDER.index(k[2])))
    columns = ["generator", "class", "reference", "features", "n_real", "n_fake", "FID", "KID", "precision",
               "recall", "density", "coverage", "MS-SSIM", "MS-SSIM real", "memorised %", "notes"]
    rows = []
    for generator, class_name, reference, features in row_keys:
        notes: list[str] = []

        def cell(metric: str, ref: str = reference, feats: str = features, scale: float = 1.0,
                 digits: int = 3) -> str:
            q = cells.get((generator, class_name, ref, metric, feats))
            if q is None:
                return ""
            if not q["meaningful"] and q["note"]:
                notes.append(q["note"])
            return f"{q['value'] * scale:.{digits}f}" + ("" if q["meaningful"] else "*")

        fid = cells[(generator, class_name, reference, "fid", features)]
        if class_name == "all" and fid["note"]:  # how the macro-average was formed: which classes were left out
            notes.append(fid["note"])
        rows.append({"generator": generator, "class": class_name, "reference": REFERENCE_LABELS[reference],
                     "features": features, "n_real": fid["n_real"], "n_fake": fid["n_fake"],
                     "FID": cell("fid"), "KID": cell("kid", digits=5), "precision": cell("precision"),
                     "recall": cell("recall"), "density": cell("density"), "coverage": cell("coverage"),
                     "MS-SSIM": cell("ms_ssim", ref="", feats="pixels"),
                     "MS-SSIM real": cell("ms_ssim_real", feats="pixels"),
                     "memorised %": cell("memorised_fraction", feats="pixels", scale=100, digits=2),
                     "notes": "; ".join(dict.fromkeys(notes))})
    return columns, rows


def quality_utility_table(result: StudyAnalysis, summary: list[dict]) -> tuple[list[str], list[dict]]:
    """Per generator, its near-copy rate (pixel-space memorised fraction vs the training images, overall), FID
    against both references, and its utility from the stored headline: change in accuracy and balanced accuracy
    vs the baseline and in accuracy vs the duplicate control, with CI and p adjusted across generators."""
    overall = {(q["generator"], q["reference"], q["metric"], q["features"]): q for q in summary
               if q["class_name"] == ""}
    headline = {(r["generator"], r["reference"], r["metric"]): r for r in result.headline if r["class_name"] == ""}
    generators = sorted({g for g, *_ in overall} | {g for g, *_ in headline if g != DUPLICATE})
    columns = ["generator", "n", "unit", "near-copies %", "features", "FID vs train", "FID vs held-out",
               "Δacc vs baseline", "p_adj", "Δbal.acc vs baseline", "p_adj (bal.acc)", "Δacc vs duplicate",
               "p_adj (dup)"]
    rows = []
    for gen in generators:
        acc = headline.get((gen, "baseline", "accuracy"))
        bal = headline.get((gen, "baseline", "balanced_accuracy"))
        dup = headline.get((gen, "duplicate", "accuracy"))
        features = next((f for g, ref, m, f in overall if g == gen and m == "fid"), "")

        def value(metric: str, reference: str, feats: str, scale: float = 1.0, digits: int = 3) -> str:
            q = overall.get((gen, reference, metric, feats))
            if q is None:
                return ""
            return f"{q['value'] * scale:.{digits}f}" + ("" if q["meaningful"] else "*")

        rows.append({"generator": gen, "n": (acc or bal or dup or {}).get("n"), "unit": _unit_column(result),
                     "near-copies %": value("memorised_fraction", "train", "pixels", 100, 2),
                     "features": features, "FID vs train": value("fid", "train", features),
                     "FID vs held-out": value("fid", "heldout", features),
                     "Δacc vs baseline": effect_with_ci(acc), "p_adj": p_text((acc or {}).get("p_adjusted")),
                     "Δbal.acc vs baseline": effect_with_ci(bal),
                     "p_adj (bal.acc)": p_text((bal or {}).get("p_adjusted")),
                     "Δacc vs duplicate": effect_with_ci(dup), "p_adj (dup)": p_text((dup or {}).get("p_adjusted"))})
    return columns, rows


def correlation_table(result: StudyAnalysis) -> tuple[list[str], list[dict]]:
    """Quality-vs-utility correlations with CI and n."""
    ci_name = f"{_pct(1 - result.analysis.alpha)} CI"
    columns = ["quality", "utility", "method", "n", "unit", "r", ci_name, "p"]
    rows = []
    for r in result.correlations:
        ci = "" if r["ci_low"] is None else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
        unit = "generator" if r["utility_metric"] == UTILITY else f"generator x {_unit_column(result)}"
        rows.append({"quality": r["quality_metric"], "utility": r["utility_metric"], "method": r["method"],
                     "n": r["n"], "unit": unit, "r": None if r["r"] is None else round(r["r"], 3), ci_name: ci,
                     "p": p_text(r["p_value"])})
    return columns, rows


# ---------------------------------------------------------------- figures


def write_figures(db: sqlite_utils.Database, result: StudyAnalysis, quality_summary: list[dict],
                  out_dir: Path) -> list[Path]:
    """Per-class F1 deltas, quality vs utility and loss curves as PNGs (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    paths = [plot_class_f1_deltas(result, out_dir / "class_f1_deltas.png"),
             plot_quality_vs_utility(result, quality_summary, out_dir / "quality_vs_utility.png"),
             plot_loss_curves(load_study_training_curves(db, result.study), out_dir / "loss_curves.png")]
    return [p for p in paths if p is not None]


def plot_class_f1_deltas(result: StudyAnalysis, path: Path) -> Path | None:
    """Grouped bars: change in F1 per class and generator (averaged over classifiers and amounts), with CIs."""
    import matplotlib.pyplot as plt

    per_class = {(r["generator"], r["class_name"]): r for r in result.headline
                 if r["reference"] == "baseline" and r["metric"] == "f1" and r["class_name"]}
    gens = sorted({g for g, _ in per_class}, key=_arm_order)
    if not gens:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(result.classes) * max(1, len(gens)) / 2), 4))
    width = 0.8 / len(gens)
    x = np.arange(len(result.classes))
    for i, gen in enumerate(gens):
        means, lows, highs = [], [], []
        for c in result.classes:
            r = per_class.get((gen, c))
            m = r["mean"] if r and r["mean"] is not None else math.nan
            means.append(m)
            lows.append(m - r["ci_low"] if r and r["ci_low"] is not None else 0)
            highs.append(r["ci_high"] - m if r and r["ci_high"] is not None else 0)
        ax.bar(x + (i - (len(gens) - 1) / 2) * width, means, width, yerr=[lows, highs], capsize=3, label=gen,
               color="0.6" if gen == DUPLICATE else None)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, result.classes)
    ax.set_ylabel("ΔF1 vs baseline")
    ax.set_title(f"{result.study}: per-class F1 change, mean over classifiers and common amounts "
                 f"({_pct(1 - result.analysis.alpha)} CI; {result.unit})", fontsize=9)
    ax.legend(fontsize=8, ncol=min(len(gens), 3))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_quality_vs_utility(result: StudyAnalysis, quality_summary: list[dict], path: Path) -> Path | None:
    """Scatter of overall quality against the training images (FID, KID, reader quality...) against each
    generator's mean Δaccuracy, with Spearman r, its CI and n in each panel's title."""
    import matplotlib.pyplot as plt

    quality: dict[str, dict] = defaultdict(dict)  # 'metric/features' -> {generator: mean over units}
    for q in quality_summary:
        if q["class_name"] == "" and q["reference"] in ("train", ""):
            quality[f"{q['metric']}/{q['features']}"][q["generator"]] = q["value"]
    effects = {r["generator"]: r for r in result.headline if r["generator"] != DUPLICATE
               and r["reference"] == "baseline" and r["metric"] == "accuracy" and r["class_name"] == ""}
    wanted = [name for name in quality if name.split("/")[0] in ("fid", "kid", "precision", "recall")]
    wanted = sorted(wanted, key=lambda n: ("fid", "kid", "precision", "recall").index(n.split("/")[0]))[:4]
    spearman = {r["quality_metric"]: r for r in result.correlations
                if r["utility_metric"] == UTILITY and r["method"] == "spearman"}
    wanted += sorted(result.ratings)
    panels = [(n, quality.get(n) or result.ratings.get(n) or {}) for n in wanted]
    panels = [(n, v) for n, v in panels if v]
    if not panels or not effects:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.text(0.5, 0.5, "no quality values or generator effects yet", ha="center", va="center")
        ax.set_axis_off()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), squeeze=False)
    for ax, (name, values) in zip(axes[0], panels):
        gens = [g for g in sorted(values) if g in effects]
        xs = [values[g] for g in gens]
        ys = [effects[g]["mean"] * 100 for g in gens]
        err = [[(effects[g]["mean"] - effects[g]["ci_low"]) * 100 if effects[g]["ci_low"] is not None else 0
                for g in gens],
               [(effects[g]["ci_high"] - effects[g]["mean"]) * 100 if effects[g]["ci_high"] is not None else 0
                for g in gens]]
        ax.errorbar(xs, ys, yerr=err, fmt="o", capsize=3)
        for x, y, g in zip(xs, ys, gens):
            ax.annotate(g, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.axhline(0, color="black", linewidth=0.6)
        row = spearman.get(name)
        if row and row["r"] is not None:
            ci = "" if row["ci_low"] is None else f" [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
            title = f"{name}: Spearman r = {row['r']:+.2f}{ci}, n = {row['n']}"
        else:
            title = f"{name}: n = {len(gens)} (too few for r)"
        ax.set_title(title, fontsize=8)
        ax.set_xlabel(name)
        ax.set_ylabel(f"Δaccuracy vs baseline (pp; {_pct(1 - result.analysis.alpha)} CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _arm_label(curve: dict) -> str:
    if curve["arm"] == "baseline":
        return "baseline"
    if curve["arm"] == "duplicate":
        return DUPLICATE
    return curve["generator"] or "synthetic"


def plot_loss_curves(curves: list[dict], path: Path) -> Path | None:
    """Validation loss per epoch (top) and training loss over training progress (bottom) per classifier, mean over
    folds, seeds and amounts for each arm (baseline, duplicate control, each generator)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not curves:
        return None
    classifiers = sorted({c["classifier"] for c in curves})
    fig, axes = plt.subplots(2, len(classifiers), figsize=(4.5 * len(classifiers), 6), squeeze=False)
    for col, clf in enumerate(classifiers):
        groups = defaultdict(list)
        for c in curves:
            if c["classifier"] == clf:
                groups[_arm_label(c)].append(c["curves"])
        for label in sorted(groups, key=lambda g: (g != "baseline", g == DUPLICATE, g)):
            style = dict(color="black") if label == "baseline" else dict(color="0.5") if label == DUPLICATE else {}
            val = _mean_curve([_by_epoch(c.get("val_loss", []), c.get("epoch", [])) for c in groups[label]])
            if val is not None:
                axes[0][col].plot(val[0], val[1], marker="o", markersize=3, label=label, **style)
            train = _mean_progress_curve([c.get("train_loss", []) for c in groups[label]])
            if train is not None:
                axes[1][col].plot(train[0], train[1], label=label, **style)
        axes[0][col].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0][col].set_title(f"{clf}: validation loss", fontsize=9)
        axes[0][col].set_xlabel("epoch")
        axes[1][col].set_title(f"{clf}: training loss (smoothed)", fontsize=9)
        axes[1][col].set_xlabel("fraction of training")
        axes[0][col].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _by_epoch(curve: list[tuple], epochs: list[tuple]) -> list[tuple]:
    """Re-key a per-epoch curve recorded at global steps by its epoch number (the 'epoch' curve at the same steps,
    else 1, 2, ...): arms with more images take more steps per epoch."""
    epoch_at = dict(epochs)
    return [(int(epoch_at.get(step, i + 1)), value) for i, (step, value) in enumerate(curve)]


def _mean_curve(curves: list[list[tuple]]) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean value per step over runs (steps present in any run)."""
    by_step = defaultdict(list)
    for curve in curves:
        for step, value in curve:
            by_step[step].append(value)
    if not by_step:
        return None
    steps = np.array(sorted(by_step))
    return steps, np.array([np.mean(by_step[s]) for s in steps])


def _mean_progress_curve(curves: list[list[tuple]], points: int = 50) -> tuple[np.ndarray, np.ndarray] | None:
    """Runs of different lengths resampled onto 0..1 of their training, smoothed, and averaged."""
    grid = np.linspace(0, 1, points)
    resampled = []
    for curve in curves:
        if len(curve) < 2:
            continue
        steps = np.array([s for s, _ in curve], dtype=float)
        values = np.array([v for _, v in curve], dtype=float)
        window = max(1, len(values) // 20)
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        progress = np.linspace(0, 1, len(smooth)) if steps.max() > steps.min() else np.zeros(len(smooth))
        resampled.append(np.interp(grid, progress, smooth))
    if not resampled:
        return None
    return grid, np.mean(resampled, axis=0)
