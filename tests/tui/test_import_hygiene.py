"""The engine and the store never import textual: checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys


def test_engine_and_store_do_not_import_textual():
    code = (
        "import sys, xaug.engine, xaug.store, xaug.store.jobs, xaug.store.ratings, xaug.engine.jobs.context,"
        " xaug.engine.bench.tui_bench, xaug.engine.cli.bench_cmds;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_image', 'textual_plotext'));"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"textual imported by engine/store: {result.stdout}"


def test_tui_does_import_textual():
    """The check above can fail: importing the TUI does pull textual in."""
    code = "import sys, xaug.tui.app; print('textual' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "True", result.stderr
