"""Architecture rules as tests: import-linter's contracts (.importlinter), "only the store writes SQL", and what
importing or loading a recipe pulls in, checked in a fresh interpreter."""

import ast
import subprocess
import sys
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).parents[1]
SQL_CALLS = {"execute", "executemany", "executescript", "query", "insert_all", "upsert_all", "delete_where"}


def test_import_contracts_are_kept():
    assert lint_imports(config_filename=str(ROOT / ".importlinter"), no_cache=True) == 0


def _sql_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found += [f"{path}:{node.lineno} imports {n}" for n in names if n.split(".")[0] == "sqlite3"]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
            found.append(f"{path}:{node.lineno} calls .{node.func.attr}()")
    return found


def test_only_the_store_runs_sql():
    offenders = [use for folder in ("engine", "tui") for path in sorted((ROOT / folder).rglob("*.py"))
                 for use in _sql_uses(path)]
    assert offenders == []


def test_the_sql_rule_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import sqlite3\ndef f(db):\n    return db.execute('SELECT 1')\n")
    assert len(_sql_uses(bad)) == 2


def test_a_broken_contract_is_reported(tmp_path):
    """The contracts can fail: a contract the code does not keep (the engine imports the store) is reported."""
    config = tmp_path / ".importlinter"
    config.write_text("[importlinter]\nroot_packages =\n    xaug.store\n    xaug.engine\n\n"
                      "[importlinter:contract:x]\nname = engine without the store\ntype = forbidden\n"
                      "source_modules =\n    xaug.engine\nforbidden_modules =\n    xaug.store\n")
    assert lint_imports(config_filename=str(config), no_cache=True) != 0


MODEL_LIBRARIES = ("torch", "torchvision", "timm", "diffusers", "transformers", "torchmetrics", "textual")


def _modules_loaded_by(code: str) -> list[str]:
    """The model libraries (and textual) in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {MODEL_LIBRARIES!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return [m for m in result.stdout.strip().split(",") if m]


def test_importing_the_recipe_loader_imports_no_model_library():
    assert _modules_loaded_by("import xaug.engine.recipe, xaug.engine.recipe.checks, xaug.engine.cli.runner") == []


def test_the_import_probe_can_fail():
    assert _modules_loaded_by("import xaug.engine.generators.gan") != []


def test_loading_a_recipe_imports_no_model_library():
    assert _modules_loaded_by("from xaug.engine.recipe import load_recipe\n"
                              "load_recipe('recipes/quickstart.yaml')\n"
                              "load_recipe('recipes/paper.yaml')") == []  # all five generators
