"""The `train_classifier` job: one classifier, one fold, one seed, one arm (baseline, synthetic or duplicate).

Trains for the classifier's step budget (the baseline's: `epochs` over the fold's real training split, the same
for every arm) on batches of real and the arm's added images, selects the checkpoint on the fold's validation
split, and resumes from its last checkpoint when the engine restarts it.
"""

from __future__ import annotations

import time

from xaug.engine.classifiers.datasets import extra_images, load_splits
from xaug.engine.classifiers.train import TrainCallbacks, TrainData, train_classifier
from xaug.engine.jobs.context import JobContext, JobInterrupted
from xaug.engine.recipe.schema import ClassifierSpec
from xaug.store.artifacts import record_artifact
from xaug.store.metrics import delete_metrics_after, record_results


class JobCallbacks(TrainCallbacks):
    """Training reports into the store through the job context."""

    def __init__(self, ctx: JobContext, progress_every_s: float = 0.5):
        self.ctx = ctx
        self.progress_every_s = progress_every_s
        self._last_progress = 0.0

    def metrics(self, step: int, values: dict[str, float]) -> None:
        """Record curve points."""
        self.ctx.metrics(step, values)

    def progress(self, done: int, total: int) -> None:
        """Report progress, at most every `progress_every_s` seconds (and always at the end)."""
        now = time.monotonic()
        if done >= total or now - self._last_progress >= self.progress_every_s:
            self._last_progress = now
            self.ctx.progress(done, total, f"step {done}/{total}")

    def should_stop(self) -> bool:
        """Engine shutdown or cancel request."""
        return self.ctx.should_stop()

    def starting_at(self, step: int) -> None:
        """Drop curve points a previous attempt recorded after the checkpoint we continue from."""
        delete_metrics_after(self.ctx.db, self.ctx.key, step)


def classifier_spec(config: dict) -> ClassifierSpec:
    """The job's classifier spec (validated again: job configs are dumps of the recipe models)."""
    return ClassifierSpec.model_validate(config["classifier"])


def input_size(config: dict) -> int:
    """The side images are resized to: the classifier's image_size, else the dataset's."""
    return int(classifier_spec(config).image_size or config["image_size"])


def run(ctx: JobContext) -> None:
    """Train the classifier of `ctx.config` for its step budget; records optimizer_steps, best_step,
    best_val_loss, train_images (real + added) and real_train_images."""
    cfg = ctx.config
    spec = classifier_spec(cfg)
    classes = list(cfg["classes"])
    fold, seed, size = int(cfg["fold"]), int(cfg["seed"]), input_size(cfg)
    splits = load_splits(ctx, fold, ("train", "val"), classes, size)
    (train_x, train_y), (val_x, val_y) = splits["train"], splits["val"]
    add_x, add_y = extra_images(ctx, cfg["arm"], int(cfg.get("amount") or 0), classes, train_x, train_y, seed, size)
    data = TrainData(train_x, train_y, val_x, val_y, add_x, add_y)
    outcome = train_classifier(spec, classes, data, ctx.work_dir, seed=seed, device=ctx.device,
                               amp=bool(cfg.get("amp", True)), callbacks=JobCallbacks(ctx))
    if not outcome.finished:
        ctx.check_stop()
        raise JobInterrupted(ctx.key)
    record_results(ctx.db, ctx.key, {
        "optimizer_steps": outcome.step,
        "best_step": outcome.best_step,
        "best_val_loss": outcome.best_val_loss,
        "train_images": len(train_x) + data.n_added,
        "real_train_images": len(train_x),
    })
    record_artifact(ctx.db, ctx.key, "checkpoint", ctx.relpath(outcome.best_checkpoint), seed=seed,
                    step=outcome.best_step, meta={"best_step": outcome.best_step})
    ctx.progress(outcome.total_steps, outcome.total_steps, "done")
