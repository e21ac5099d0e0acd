"""Power of the corrected t-test: against statsmodels' TTestPower, a textbook sample size, and the CLI."""

import math

import pytest
from fake_study import FOLDS, build_fake_study
from statsmodels.stats.power import TTestPower
from typer.testing import CliRunner

from xaug.engine.analysis.power import corrected_t_power, per_test_alpha, required_repeats, required_units
from xaug.engine.cli import load_commands
from xaug.store import open_store


def test_uncorrected_power_matches_statsmodels_and_the_textbook_n():
    # Cohen's d = 0.5, two-sided alpha 0.05, power 0.8: a paired / one-sample t-test needs n = 34 (33.37 rounded up)
    assert TTestPower().solve_power(effect_size=0.5, alpha=0.05, power=0.8) == pytest.approx(33.367, abs=0.01)
    assert required_units(effect=0.5, sd=1.0, test_train_ratio=0.0, alpha=0.05, power=0.8) == 34
    for n in (5, 12, 34):
        assert corrected_t_power(0.5, 1.0, n, 0.0, 0.05) == pytest.approx(
            TTestPower().power(effect_size=0.5, nobs=n, alpha=0.05), rel=1e-8)


def test_correction_deflates_the_effect_size():
    # NB: noncentrality d sqrt(n) / sqrt(1 + n r), i.e. TTestPower at effect size d / sqrt(1 + n r)
    for n, ratio in ((10, 0.25), (30, 0.25), (20, 0.5)):
        expected = TTestPower().power(effect_size=0.8 / math.sqrt(1 + n * ratio), nobs=n, alpha=0.05)
        assert corrected_t_power(0.8, 1.0, n, ratio, 0.05) == pytest.approx(expected, rel=1e-8)
    # more repeats cannot beat the ceiling effect / (sd sqrt(r)): a small effect is unreachable with 5 folds
    plan = required_repeats(effect=0.1, sd=1.0, folds=5, test_train_ratio=0.25, alpha=0.05, power=0.8,
                            max_repeats=50)
    assert plan.repeats is None and plan.power < 0.8
    plan = required_repeats(effect=2.0, sd=1.0, folds=5, test_train_ratio=0.25, alpha=0.05, power=0.8)
    assert plan.units == 5 * plan.repeats
    assert corrected_t_power(2.0, 1.0, plan.units, 0.25, 0.05) >= 0.8
    assert plan.repeats == 1 or corrected_t_power(2.0, 1.0, plan.units - 5, 0.25, 0.05) < 0.8


def test_multiplicity_lowers_the_level():
    assert per_test_alpha(0.05, "holm", 5) == pytest.approx(0.01)
    assert per_test_alpha(0.05, "none", 5) == 0.05


def test_power_cli_reads_the_stored_analysis(tmp_path):
    db_path = tmp_path / "xaug.db"
    build_fake_study(open_store(db_path))
    app = load_commands()
    result = CliRunner().invoke(app, ["power", "toy", "--effect", "0.005", "--metric", "balanced_accuracy",
                                      "--store", str(db_path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "goodgan" in result.output and f"n = {len(FOLDS)} units" in result.output
    assert "noncentral t" in result.output
    bad = CliRunner().invoke(app, ["power", "toy", "--effect", "0.02", "--metric", "auroc", "--store",
                                   str(db_path)])
    assert bad.exit_code != 0
