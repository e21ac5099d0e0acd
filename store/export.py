"""Writing tables for papers and spreadsheets: CSV, Markdown (GitHub pipes) and LaTeX (booktabs), and the one way a
comparison's numbers are written (`effect_with_ci`, `ci_text`, `p_text`, `significant`): `xaug report`'s tables and the TUI's
study screen show a change identically.

A table is a list of column names and a list of row dicts; cells are written as given (format numbers first).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def signed_pp(value, scale: float = 100.0, digits: int = 2) -> str:
    """A signed number in percentage points (`+1.23`), '' for None/NaN."""
    return "" if _missing(value) else f"{value * scale:+.{digits}f}"


def ci_text(row: Mapping | None, scale: float = 100.0) -> str:
    """A comparison row's confidence interval, `[-0.40, +2.86]` in percentage points; '' when it has none."""
    if row is None or _missing(row.get("ci_low")) or _missing(row.get("ci_high")):
        return ""
    return f"[{signed_pp(row['ci_low'], scale)}, {signed_pp(row['ci_high'], scale)}]"


def effect_with_ci(row: Mapping | None, scale: float = 100.0, ci: bool = True) -> str:
    """A comparison row's change, `+1.23 [-0.40, +2.86]` in percentage points; without the CI when `ci` is False or
    the row has none; '' without a row or a mean."""
    if row is None or _missing(row.get("mean")):
        return ""
    interval = ci_text(row, scale) if ci else ""
    return f"{signed_pp(row['mean'], scale)} {interval}".rstrip()


def p_text(value) -> str:
    """A p-value as tables write it: `<0.001` or three decimals; '' for None/NaN."""
    return "" if _missing(value) else ("<0.001" if value < 0.001 else f"{value:.3f}")


def significant(row: Mapping | None, alpha: float) -> bool:
    """Whether a comparison row is starred: its multiplicity-adjusted p is below alpha."""
    return row is not None and not _missing(row.get("p_adjusted")) and row["p_adjusted"] < alpha


def _cell(value) -> str:
    """A cell as text: None -> '', floats with 4 significant decimals."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"
    return str(value)


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping]) -> Path:
    """Write a table as CSV with a header row (UTF-8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
    return path


def markdown_table(columns: Sequence[str], rows: Sequence[Mapping], caption: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (pipes escaped), with an optional caption paragraph above it."""
    def esc(text: str) -> str:
        return text.replace("|", r"\|").replace("\n", " ")

    lines = [f"{caption}\n"] if caption else []
    lines.append("| " + " | ".join(esc(c) for c in columns) + " |")
    lines.append("|" + "|".join(" --- " for _ in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(esc(_cell(row.get(c))) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex_table(columns: Sequence[str], rows: Sequence[Mapping], caption: str | None = None,
                label: str | None = None) -> str:
    """A booktabs `table` environment (needs \\usepackage{booktabs}); text columns left, others right-aligned."""
    align = "".join("l" if _is_text_column(c, rows) else "r" for c in columns)
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    if label:
        lines.append(r"\label{" + label + "}")
    lines += [r"\begin{tabular}{" + align + "}", r"\toprule",
              " & ".join(latex_escape(c) for c in columns) + r" \\", r"\midrule"]
    for row in rows:
        lines.append(" & ".join(latex_escape(_cell(row.get(c))) for c in columns) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _is_text_column(column: str, rows: Sequence[Mapping]) -> bool:
    """A column whose values are not all numbers (or empty)."""
    for row in rows:
        value = row.get(column)
        if value is not None and not isinstance(value, (int, float)):
            return True
    return False


def write_table(out_dir: Path, name: str, columns: Sequence[str], rows: Sequence[Mapping],
                caption: str | None = None) -> list[Path]:
    """Write `name`.csv, `name`.md and `name`.tex into `out_dir`; returns the three paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{name}.md"
    tex = out_dir / f"{name}.tex"
    md.write_text(markdown_table(columns, rows, caption), encoding="utf-8")
    tex.write_text(latex_table(columns, rows, caption, label=f"tab:{name}"), encoding="utf-8")
    return [write_csv(out_dir / f"{name}.csv", columns, rows), md, tex]
