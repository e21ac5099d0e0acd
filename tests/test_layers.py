"""Architecture rules as tests: import-linter's contracts (.importlinter) and "only the store writes SQL"."""

import ast
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
    config = tmp_path / ".importlinter"
    config.write_text("[importlinter]\nroot_packages =\n    xaug.store\n    xaug.engine\n\n"
                      "[importlinter:contract:x]\nname = store without engine errors\ntype = forbidden\n"
                      "source_modules =\n    xaug.store\nforbidden_modules =\n    xaug.engine.errors\n")
    assert lint_imports(config_filename=str(config), no_cache=True) != 0
