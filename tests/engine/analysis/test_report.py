"""`xaug report`: the tables and figures exist and hold the expected rows."""

import csv
import json

import pytest
from fake_study import AMOUNTS, CLASSES, CLASSIFIERS, GENERATORS, build_fake_study
from PIL import Image
from typer.testing import CliRunner

from xaug.engine.analysis.report import build_report
from xaug.engine.cli import load_commands
from xaug.store.errors import StoreError
from xaug.store import open_store

TABLES = ("comparisons", "comparisons_long", "generator_effects", "baseline", "class_f1", "quality",
          "quality_vs_utility", "correlations", "power")
UNIT = "n = 3 units; unit = fold (seeds averaged within a fold)"
FIGURES = ("class_f1_deltas.png", "quality_vs_utility.png", "loss_curves.png")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    db = open_store(root / "xaug.db")
    build_fake_study(db)
    out = root / "out"
    report = build_report(db, "toy", out)
    return out, report


def _csv(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_every_table_is_written_in_three_formats(report_dir):
    out, report = report_dir
    for name in TABLES:
        for suffix in ("csv", "md", "tex"):
            assert (out / f"{name}.{suffix}").is_file(), f"{name}.{suffix}"
    tex = (out / "comparisons.tex").read_text()
    assert r"\toprule" in tex and r"\begin{tabular}" in tex and "Holm" in tex
    md = (out / "comparisons.md").read_text()
    assert md.count("| goodgan |") == len(CLASSIFIERS) * len(AMOUNTS)


def test_comparison_matrix_rows(report_dir):
    out, report = report_dir
    rows = _csv(out / "comparisons.csv")
    arms = {(r["generator"], r["classifier"], r["amount"]) for r in rows}
    expected = {(g, c, str(a)) for g in [*GENERATORS, "(duplicate)"] for c in CLASSIFIERS for a in AMOUNTS}
    assert arms == expected
    good = [r for r in rows if r["generator"] == "goodgan"]
    assert all(r["Δacc vs baseline"].startswith("+") and r["Δacc vs duplicate"] for r in good)
    dup = [r for r in rows if r["generator"] == "(duplicate)"]
    assert all(r["Δacc vs duplicate"] == "" for r in dup)
    assert report.key_rows and report.key_columns[0] == "generator"


def test_effects_class_f1_quality_and_correlation_tables(report_dir):
    out, _ = report_dir
    effects = {(r["generator"], r["reference"], r["metric"]): r for r in _csv(out / "generator_effects.csv")}
    assert float(effects[("goodgan", "baseline", "accuracy")]["Δ (pp)"]) == pytest.approx(5.0, abs=1.0)
    assert float(effects[("badddpm", "baseline", "accuracy")]["Δ (pp)"]) == pytest.approx(-3.0, abs=1.0)
    # the headline is against both references, on all three metrics; the duplicate control is +1 pp
    assert float(effects[("goodgan", "duplicate", "macro_f1")]["Δ (pp)"]) == pytest.approx(4.0, abs=1.0)
    assert {k[2] for k in effects} == {"accuracy", "balanced_accuracy", "macro_f1"}
    assert all(r["n"] == "3" and r["amounts"] == "10,20" for r in effects.values())
    f1 = _csv(out / "class_f1.csv")
    assert set(f1[0]) >= {"generator", "classifier", "amount", *CLASSES}
    # with n = 3 units (not 6 fold x seed runs) only the clearest viral gains survive Holm; stars follow p_adj
    long = {(r["generator"], r["classifier"], r["amount"]): r for r in _csv(out / "comparisons_long.csv")
            if r["reference"] == "baseline" and r["metric"] == "f1" and r["class_name"] == "viral"}
    for r in f1:
        significant = float(long[(r["generator"], r["classifier"], r["amount"])]["p_adjusted"]) < 0.05
        assert r["viral"].endswith("*") == significant
    assert any(r["viral"].endswith("*") for r in f1 if r["generator"] == "goodgan")
    assert not any(r["viral"].endswith("*") for r in f1 if r["generator"] == "badddpm")
    quality = {(r["generator"], r["class"]): r for r in _csv(out / "quality.csv")}
    assert float(quality[("goodgan", "all")]["FID"]) == pytest.approx(31.0)  # folds 30, 31, 32
    assert quality[("goodgan", "all")]["n_real"] == "60" and quality[("goodgan", "viral")]["n_fake"] == "20"
    corr = _csv(out / "correlations.csv")
    fid = [r for r in corr if r["quality"] == "fid/pixels" and r["utility"] == "delta_accuracy"]
    assert {r["method"] for r in fid} == {"spearman", "pearson"} and all(r["n"] == "3" for r in fid)
    baseline = {r["classifier"]: r for r in _csv(out / "baseline.csv")}
    assert set(baseline) == set(CLASSIFIERS)


def _add_heldout_quality(db, jobs) -> None:
    """Give each image_quality job held-out values (FID + 5), a per-fold near-copy rate, and a viral class too
    small to be meaningful, left out of the overall macro-average."""
    from xaug.store.quality import load_quality, record_quality

    for job in jobs["image_quality"]:
        rows = load_quality(db, job.key)
        fold = job.config["fold"]
        held = [dict(r, reference="heldout", value=r["value"] + 5.0) for r in rows
                if r["metric"] == "fid"]
        for r in rows + held:
            if r["metric"] == "memorised_fraction":
                r["value"] = 0.01 * (fold + 1) if r["class_name"] == "" else 0.0
                r["note"] = "threshold: 95th percentile of 20 held-out (validation) images of this class"
            if r["class_name"] == "viral" and r["metric"] == "fid":
                r.update(meaningful=False, note="too few images to be meaningful: 4 real, 4 synthetic")
            if r["class_name"] == "" and r["metric"] == "fid":
                r["note"] = "macro-average of 2 classes; left out (too few images): viral"
        record_quality(db, job.key, rows + held)


def test_quality_against_both_references_and_near_copies_next_to_utility(tmp_path):
    from xaug.engine.analysis.study import analyse_study, record_study_analysis

    db = open_store(tmp_path / "xaug.db")
    jobs = build_fake_study(db, analyse=False)
    _add_heldout_quality(db, jobs)
    record_study_analysis(db, analyse_study(db, "toy"))
    out = tmp_path / "out"
    build_report(db, "toy", out)
    quality = {(r["generator"], r["class"], r["reference"]): r for r in _csv(out / "quality.csv")}
    assert float(quality[("goodgan", "all", "train")]["FID"]) == pytest.approx(31.0)  # folds 30, 31, 32
    assert float(quality[("goodgan", "all", "held-out")]["FID"]) == pytest.approx(36.0)
    assert quality[("goodgan", "all", "held-out")]["memorised %"] == ""  # near-copies are of training images
    viral = quality[("goodgan", "viral", "held-out")]
    assert viral["FID"].endswith("*") and "too few images" in viral["notes"]
    assert not quality[("goodgan", "healthy", "train")]["FID"].endswith("*")
    assert quality[("goodgan", "all", "train")]["notes"] == "macro-average of 2 classes; left out (too few images): viral"
    caption = (out / "quality.md").read_text()
    assert "macro-average" in caption and "* = not meaningful" in caption
    near = {r["generator"]: r for r in _csv(out / "quality_vs_utility.csv")}
    assert set(near) == set(GENERATORS)
    assert float(near["goodgan"]["near-copies %"]) == pytest.approx(2.0)  # folds 1, 2, 3 %
    assert float(near["badddpm"]["FID vs held-out"]) == pytest.approx(86.0)
    effects = {r["generator"]: r for r in _csv(out / "generator_effects.csv")
               if r["reference"] == "baseline" and r["metric"] == "accuracy"}
    for gen in GENERATORS:  # the utility is the stored headline, with its CI
        assert near[gen]["Δacc vs baseline"].startswith(effects[gen]["Δ (pp)"] + " [")
        assert near[gen]["n"] == "3" and near[gen]["Δacc vs duplicate"]
    assert "(duplicate)" not in near


def test_every_table_states_n_and_the_unit(report_dir):
    out, report = report_dir
    assert report.unit == UNIT
    for name in ("comparisons", "comparisons_long", "generator_effects", "baseline", "class_f1", "power"):
        rows = _csv(out / f"{name}.csv")
        assert rows and all(r["n"] == "3" and r["unit"] == "fold (seeds averaged within a fold)" for r in rows), name
        assert UNIT in (out / f"{name}.md").read_text() and UNIT in (out / f"{name}.tex").read_text(), name
    power = {r["generator"]: r for r in _csv(out / "power.csv")}
    assert set(power) == {*GENERATORS, "(duplicate)"}


def test_figures_are_pngs(report_dir):
    out, report = report_dir
    for name in FIGURES:
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.size[0] > 300 and img.size[1] > 200
        assert out / name in report.files


def test_cli_writes_the_report_and_prints_the_key_table(tmp_path):
    db_path = tmp_path / "xaug.db"
    build_fake_study(open_store(db_path))
    app = load_commands()
    result = CliRunner().invoke(app, ["report", "toy", "--out", str(tmp_path / "r"), "--store", str(db_path)],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "goodgan" in result.output and "Holm" in result.output and UNIT in result.output
    assert (tmp_path / "r" / "comparisons.csv").is_file() and (tmp_path / "r" / "loss_curves.png").is_file()


def test_cli_errors_are_named(tmp_path):
    app = load_commands()
    result = CliRunner().invoke(app, ["report", "toy", "--store", str(tmp_path / "missing.db")])
    assert isinstance(result.exception, StoreError)
    db_path = tmp_path / "empty.db"
    open_store(db_path)
    result = CliRunner().invoke(app, ["report", "nosuch", "--store", str(db_path)])
    assert isinstance(result.exception, StoreError) and "no study 'nosuch'" in str(result.exception)


def test_a_study_without_results_still_gets_a_report(tmp_path):
    from xaug.store.studies import record_study

    db = open_store(tmp_path / "xaug.db")
    record_study(db, "empty", None, "name: empty", {"name": "empty"})
    report = build_report(db, "empty", tmp_path / "out")
    assert (tmp_path / "out" / "comparisons.csv").read_text().startswith("generator,classifier,amount")
    assert report.key_rows == [] and (tmp_path / "out" / "quality_vs_utility.png").is_file()


def test_external_test_set_is_reported_apart_and_leaves_the_statistics_alone(tmp_path):
    from fake_study import EXTERNAL_DROP

    from xaug.engine.analysis.study import load_study_analysis

    plain_db, external_db = open_store(tmp_path / "plain.db"), open_store(tmp_path / "external.db")
    build_fake_study(plain_db)
    build_fake_study(external_db, external=True)
    plain, external = load_study_analysis(plain_db, "toy"), load_study_analysis(external_db, "toy")
    assert external.comparisons == plain.comparisons and external.headline == plain.headline
    assert external.arm_summaries == plain.arm_summaries and plain.external_summaries == []
    by_arm = {(r["classifier"], r["arm"], r["generator"], r["amount"], r["metric"], r["class_name"]): r
              for r in external.arm_summaries}
    assert len(external.external_summaries) == len(by_arm)
    for row in external.external_summaries:
        fold = by_arm[(row["classifier"], row["arm"], row["generator"], row["amount"], row["metric"],
                       row["class_name"])]
        drop = EXTERNAL_DROP if row["metric"] in ("accuracy", "balanced_accuracy", "macro_f1") else 0.0
        assert row["test_set"] == "external" and row["n"] == fold["n"]
        assert row["mean"] == pytest.approx(fold["mean"] - drop)
    build_report(plain_db, "toy", tmp_path / "plain")
    assert not (tmp_path / "plain" / "external.csv").exists()
    build_report(external_db, "toy", tmp_path / "out")
    rows = _csv(tmp_path / "out" / "external.csv")
    arms = 1 + len(AMOUNTS) + len(GENERATORS) * len(AMOUNTS)
    assert len(rows) == len(CLASSIFIERS) * arms
    baseline = next(r for r in rows if r["arm"] == "baseline" and r["classifier"] == CLASSIFIERS[0])
    fold_baseline = by_arm[(CLASSIFIERS[0], "baseline", "", 0, "accuracy", "")]
    assert baseline["accuracy"].startswith(f"{fold_baseline['mean'] - EXTERNAL_DROP:.3f} (")
    assert baseline["n"] == "3" and baseline["unit"]
    results = CliRunner().invoke(load_commands(), ["results", "toy", "--store", str(tmp_path / "external.db"),
                                                   "--test-set", "external", "--json"])
    scores = json.loads(results.output)["scores"]
    first = next(r for r in scores if r["arm"] == "baseline" and r["classifier"] == CLASSIFIERS[0])
    assert first["accuracy_mean"] == pytest.approx(fold_baseline["mean"] - EXTERNAL_DROP)


def test_the_analysis_and_the_tui_order_classes_alike_when_the_recipe_names_none(tmp_path):
    from xaug.engine.analysis.study import analyse_study, load_study_analysis
    from xaug.store.studies import study_classes

    db = open_store(tmp_path / "x.db")
    build_fake_study(db, "folder", recipe_classes=False)  # class metrics recorded alphabetically
    assert study_classes(db, "folder") == CLASSES  # from the jobs' configs: the study's order
    assert analyse_study(db, "folder").classes == load_study_analysis(db, "folder").classes == CLASSES
