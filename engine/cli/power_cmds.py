"""`xaug power STUDY --effect 0.02`: how many folds x repeats a study needs to detect an effect, planned from a
finished pilot study's stored analysis (the SD of its unit-level paired differences)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from xaug.engine.cli import app
from xaug.engine.cli.queue_cmds import JsonOption, StoreOption, open_existing_store
from xaug.store.errors import StoreError

console = Console()
POWER_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


@app.command("power")
def power(
    study: Annotated[str, typer.Argument(help="A finished pilot study (its analyse job has run).")],
    effect: Annotated[float, typer.Option(help="Smallest change to detect, as a fraction (0.02 = 2 points).")],
    metric: Annotated[str, typer.Option(help="accuracy, balanced_accuracy or macro_f1.")] = "accuracy",
    reference: Annotated[str, typer.Option(help="baseline or duplicate.")] = "baseline",
    alpha: Annotated[float | None, typer.Option(help="Significance level; default the study's analysis.alpha.")]
    = None,
    target: Annotated[float, typer.Option("--power", help="Wanted power (probability of detecting the effect).")]
    = 0.8,
    max_repeats: Annotated[int, typer.Option(help="Largest number of repeats to consider.")] = 200,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Plan the repeats of k-fold (units = folds x repeats) needed per generator to detect --effect with the
    study's test and multiple-comparison correction, using the pilot's SD of unit differences and the
    Nadeau-Bengio variance inflation (the k-fold test/train ratio does not shrink with more repeats).

    Example: xaug power quickstart --effect 0.02 --metric balanced_accuracy --store runs/quickstart.db
    """
    from xaug.engine.analysis.power import METHOD, per_test_alpha, required_repeats
    from xaug.engine.analysis.study import load_study_analysis

    if metric not in POWER_METRICS:
        raise typer.BadParameter(f"{metric!r} is not in the headline; choose one of {', '.join(POWER_METRICS)}",
                                 param_hint="--metric")
    if not 0 < target < 1 or (alpha is not None and not 0 < alpha < 1) or effect <= 0:
        raise typer.BadParameter("--effect must be > 0, and --power and --alpha between 0 and 1")
    result = load_study_analysis(open_existing_store(store), study)
    rows = [r for r in result.headline if r["metric"] == metric and r["reference"] == reference
            and r["class_name"] == "" and r["sd"] is not None]
    if not rows:
        raise StoreError(f"study '{study}' has no stored {metric} effects vs {reference} with at least two units; "
                         "run its analyse job first (`xaug status --study " + study + "`)")
    info = result.info
    folds = max(1, int(info["n_units"]) // max(1, int(info["repeats"])))
    ratio = info.get("test_train_ratio") or 1.0 / max(folds - 1, 1)
    level = per_test_alpha(alpha if alpha is not None else result.analysis.alpha, result.analysis.correction,
                           len(rows))
    plans = {r["generator"]: (r, required_repeats(effect, r["sd"], folds, ratio, level, target, max_repeats))
             for r in rows}
    if as_json:
        print(json.dumps({"study": study, "metric": metric, "reference": reference, "effect": effect,
                          "alpha_per_test": level, "folds": folds, "test_train_ratio": ratio, "unit": result.unit,
                          "method": METHOD, "generators": {g: dict(pilot_n=r["n"], sd=r["sd"], repeats=p.repeats,
                                                                   units=p.units, power=p.power)
                                                           for g, (r, p) in plans.items()}}))
        return
    table = Table(title=f"{study}: repeats of {folds}-fold CV to detect {effect * 100:+g} pp {metric} vs "
                        f"{reference} with power {target:.0%}", title_justify="left")
    for column in ("generator", "pilot n", "SD of unit differences (pp)", "repeats", "units", "power"):
        table.add_column(column)
    for generator, (r, plan) in plans.items():
        table.add_row(generator, str(r["n"]), f"{r['sd'] * 100:.2f}",
                      str(plan.repeats) if plan.repeats else f"> {max_repeats} (unreachable)",
                      str(plan.units) if plan.units else "-", f"{plan.power:.2f}")
    console.print(table)
    console.print(f"pilot: {result.unit}; n_test/n_train = {ratio:.3f}; per-test alpha = {level:.4g} "
                  f"({result.analysis.correction} over {len(rows)} comparisons); {METHOD}. The study's test is "
                  f"{result.analysis.test}" + (" (planned with the corrected t-test; the Wilcoxon test has "
                                               "similar power, ARE >= 0.864)" if result.analysis.test == "wilcoxon"
                                               else "") + ".", style="dim", highlight=False)
