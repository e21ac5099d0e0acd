"""The one way a comparison's numbers are written, shared by `xaug report` and the TUI's study screen."""

from __future__ import annotations

from xaug.store.export import ci_text, effect_with_ci, p_text, signed_pp, significant


def test_a_change_is_written_in_signed_points_with_its_ci():
    row = {"mean": 0.0123, "ci_low": -0.004, "ci_high": 0.0286, "p_value": 0.01, "p_adjusted": 0.04}
    assert effect_with_ci(row) == "+1.23 [-0.40, +2.86]"
    assert effect_with_ci(row, ci=False) == "+1.23"
    assert effect_with_ci({**row, "ci_low": float("nan")}) == "+1.23"  # no CI (one unit): the change alone
    assert effect_with_ci({"mean": float("nan")}) == effect_with_ci(None) == ""
    assert ci_text(row) == "[-0.40, +2.86]" and ci_text({"mean": 0.1}) == "" and ci_text(None) == ""
    assert signed_pp(None) == "" and signed_pp(-0.5, digits=1) == "-50.0"
    assert p_text(0.0004) == "<0.001" and p_text(0.0456) == "0.046" and p_text(float("nan")) == ""


def test_only_the_adjusted_p_stars_a_change():
    assert significant({"p_value": 0.01, "p_adjusted": 0.04}, alpha=0.05)
    assert not significant({"p_value": 0.01, "p_adjusted": 0.2}, alpha=0.05)  # corrected away
    assert not significant({"p_value": 0.01, "p_adjusted": None}, alpha=0.05)  # no corrected test: no star
    assert not significant(None, alpha=0.05)
