"""Packaging: every package folder is installed, and engine/store never import the TUI toolkit."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    for import_prefix, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([import_prefix, *rel.parts]))
    assert found == listed


def test_engine_and_store_do_not_import_textual():
    code = ("import sys, xaug.engine.recipe, xaug.engine.cli, xaug.store, xaug.store.metrics;"
            "import xaug.engine.jobs.context;"
            "print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
