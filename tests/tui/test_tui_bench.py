"""`xaug bench tui` runs end to end on a small queue, and refuses a folder that is not an xaug source tree."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from xaug.engine.bench.tui_bench import measure, measure_tree


def test_measure_a_small_queue():
    result = measure(300, 3)
    assert result["jobs"] == 300 and result["changed"] == 3
    assert 0 < result["first_paint_s"] <= result["all_rows_s"] < 60
    assert 0 < result["change_shown_s"] < 30 and result["apply_s"] < 0.05


def test_before_must_be_a_source_tree(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an xaug source tree"):
        measure_tree(tmp_path, 10, 1)


def test_the_command_checks_its_numbers():
    from xaug.engine.cli import load_commands

    result = CliRunner().invoke(load_commands(), ["bench", "tui", "--jobs", "2", "--changed", "5"])
    assert result.exit_code != 0 and "--changed" in result.output
