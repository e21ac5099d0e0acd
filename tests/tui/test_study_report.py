"""One source of numbers: the study screen shows exactly the changes, CIs and significance that `xaug report`
writes from the same stored analysis, at the analysis' alpha."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tui_fake_store import settle

from xaug.engine.analysis.report import build_report
from xaug.engine.analysis.study import analyse_study, record_study_analysis
from xaug.store import open_store
from xaug.tui.app import XaugApp

sys.path.insert(0, str(Path(__file__).parents[1] / "engine" / "analysis"))
from fake_study import build_fake_study  # noqa: E402

pytestmark = pytest.mark.anyio
ALPHA = 0.2
"""Not the default 0.05: a screen that assumed 0.05 would star different cells and print '95% CI'."""


def _matrix(screen) -> dict[tuple[str, str, int], str]:
    """(generator, classifier, amount) -> the cell's text, from the study screen's matrix."""
    table = screen.query_one("#matrix")
    amounts = [int(str(c.label).strip("+/class")) for c in list(table.columns.values())[2:]]
    cells = {}
    for i in range(table.row_count):
        generator, classifier, *values = table.get_row_at(i)
        for amount, value in zip(amounts, values):
            cells[(generator, classifier, amount)] = value.plain
    return cells


async def test_study_screen_equals_the_report(tmp_path):
    db = open_store(tmp_path / "xaug.db")
    build_fake_study(db, analyse=False)
    record_study_analysis(db, analyse_study(db, "toy", {"alpha": ALPHA}))
    report = build_report(db, "toy", tmp_path / "report")
    assert report.alpha == ALPHA
    app = XaugApp(tmp_path / "xaug.db", poll_s=60)
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        await pilot.press("f3")
        await settle(pilot)
        screen = pilot.app.screen
        assert "80% CI" in str(screen.query_one("#study-title").render())
        shown = {"baseline": _matrix(screen)}
        await pilot.press("b")  # the duplicate control
        await settle(pilot)
        assert screen.reference == "duplicate"
        shown["duplicate"] = _matrix(screen)
    compared = 0
    for row in report.key_rows:
        arm = (row["generator"], row["classifier"], row["amount"])
        for reference, column, p_column in (("baseline", "Δacc vs baseline", "p_adj"),
                                            ("duplicate", "Δacc vs duplicate", "p_adj (dup)")):
            if not row[column]:
                assert arm not in shown[reference] or shown[reference][arm] == "-"
                continue
            cell = shown[reference][arm]
            assert cell.rstrip(" *") == row[column]  # the same change and CI, written the same way
            p = row[p_column]
            significant = p == "<0.001" or (p != "" and float(p) < ALPHA)
            assert cell.endswith(" *") == significant, (arm, reference, cell, p)
            compared += 1
    assert compared == len(report.key_rows) * 2 - sum(1 for r in report.key_rows if not r["Δacc vs duplicate"])
    assert compared >= 12
