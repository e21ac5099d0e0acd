"""The `analyse` job: a study's statistics, computed once and recorded in the store (`analyses`, `comparisons`,
`headline`, `arm_summaries`, `correlations`); every report, `xaug results` and the TUI read these rows.

Config: `study`, `classes`, `analysis` (AnalysisConfig dump). Depends on every evaluate and image_quality job of the
study, so it runs last; re-running it replaces the study's rows.
"""

from __future__ import annotations

from xaug.engine.analysis.study import analyse_study, record_study_analysis
from xaug.engine.jobs.context import JobContext


def run(ctx: JobContext) -> None:
    """Analyse the study named in the config and record its analysis rows."""
    config = ctx.config
    ctx.progress(0, 2, "comparing arms")
    result = analyse_study(ctx.db, config["study"], config.get("analysis") or {}, config.get("classes") or None)
    ctx.check_stop()
    ctx.progress(1, 2, "recording the analysis")
    record_study_analysis(ctx.db, result)
    ctx.progress(2, 2, f"{result.unit}; {len(result.comparisons)} comparisons, {len(result.headline)} headline rows")
