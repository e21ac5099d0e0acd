"""Job `prepare_data`: decode the dataset once, make the patient-level folds of every repetition of the k-fold
split (`splits.repeats`), record who is in which split.

Config: `dataset` (DatasetConfig dump, `path` absolute) and `splits` (SplitsConfig dump). Writes `images.npy`
and `index.json` into the job's folder (see xaug.engine.data.prepared), `split_members` rows (repeat, fold, split)
with keyed patient pseudonyms (the key: store/studies.py), a `skipped_images` row for each row or file skipped (by a
row filter, a label rule or `on_unreadable: skip`; the reason names the rule; its path made private,
engine/data/pseudonyms.py), and with dataset.subsample the draw per class (`subsample_draws`) and the external test
set (`external_members`).
"""

from __future__ import annotations

from xaug.engine.data.prepared import load_prepared, prepare_dataset
from xaug.engine.jobs.context import JobContext
from xaug.engine.recipe.schema import DatasetConfig, SplitsConfig
from xaug.store.studies import (pseudonymise, record_external_members, record_skipped_images, record_split_members,
                                record_subsample, store_salt)


def run(ctx: JobContext) -> None:
    """Prepare the dataset into ctx.work_dir and record split members and skipped images in the store."""
    dataset = DatasetConfig.model_validate(ctx.config["dataset"])
    splits = SplitsConfig.model_validate(ctx.config["splits"])
    salt = store_salt(ctx.db_path)

    def decoding(done: float, total: float) -> None:
        ctx.progress(done, total, "decoding images")
        ctx.check_stop()  # nothing is written until every image is decoded

    report = prepare_dataset(dataset, splits, ctx.work_dir,
                             pseudonymise=lambda patient_id: pseudonymise(salt, patient_id), progress=decoding)
    ctx.check_stop()
    prepared = load_prepared(ctx.work_dir)
    record_split_members(ctx.db, ctx.key, prepared.split_members())
    record_skipped_images(ctx.db, ctx.key, report.skipped)
    record_subsample(ctx.db, ctx.key, report.subsample)
    record_external_members(ctx.db, ctx.key, prepared.external_members())
    summary = ", ".join(f"{name} {count}" for name, count in report.class_counts.items())
    folds = f"{report.folds} folds" + (f" x {report.repeats} repeats" if report.repeats > 1 else "")
    ctx.progress(report.n_images, report.n_images,
                 f"{report.n_images} images ({summary}), {folds}, {len(report.skipped)} skipped"
                 + (f", {report.n_external} in the external test set" if report.n_external else "")
                 + (" (reused)" if report.reused else ""))
