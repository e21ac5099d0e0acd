"""The `analyse` job: a study's paired comparisons and quality-vs-utility correlations, recorded in the store.

Config: `study`, `classes`, `analysis` (AnalysisConfig dump). Depends on every evaluate and image_quality job of the
study, so it runs last; re-running it replaces the study's rows.
"""

from __future__ import annotations

from xaug.engine.analysis.study import analyse_study
from xaug.engine.jobs.context import JobContext
from xaug.store.analysis import record_comparisons, record_correlations


def run(ctx: JobContext) -> None:
    """Analyse the study named in the config and record `comparisons` and `correlations` rows."""
    config = ctx.config
    ctx.progress(0, 2, "comparing arms")
    result = analyse_study(ctx.db, config["study"], config.get("analysis") or {}, config.get("classes") or None)
    ctx.check_stop()
    record_comparisons(ctx.db, config["study"], result.comparisons)
    ctx.progress(1, 2, "correlating quality with utility")
    record_correlations(ctx.db, config["study"], result.correlations)
    ctx.progress(2, 2, f"{len(result.comparisons)} comparisons, {len(result.correlations)} correlations")
