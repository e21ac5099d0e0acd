"""Job `train_generator`: train one generative model on a fold's training split (never its validation or test
images), recording losses, progress and sample grids, and resuming from its last checkpoint after a stop.

Config: `generator` (GeneratorSpec dump), `fold`, `seed`, `classes`, `image_size`, `amp`.
Given N GPUs (resources.generator_gpus), a generator registered as `distributed` (DDPM, the Stable Diffusion
family) trains one model on N accelerate processes (generators/distributed.py); this worker waits for them, replays
rank 0's progress and grids into the store (it alone writes there) and tells them to checkpoint and stop when the
engine stops or cancels the job. Other generators train in this process on the first GPU.
Writes: the generator's checkpoint folder `model/` under the work folder, `grids/step_XXXXXX.png`; store rows:
metrics (the generator's losses, ADA p, ...), artifacts of kind `grid` (with step) and `checkpoint`.
"""

from __future__ import annotations

import time

import numpy as np
from pydantic import ValidationError

from xaug.store.errors import DataError, RecipeError
from xaug.engine.generators import distributed
from xaug.engine.generators.base import TrainImages
from xaug.engine.generators.registry import get_generator
from xaug.engine.generators.samples import make_grid, save_png
from xaug.engine.jobs.context import JobContext, JobInterrupted
from xaug.engine.recipe.schema import GeneratorSpec
from xaug.store.artifacts import record_artifact

MAX_CURVE_POINTS = 2000
"""At most this many points per loss curve are stored (every k-th step for long runs; the last step always)."""
PROGRESS_INTERVAL_S = 0.5
"""Minimum seconds between progress updates written to the store."""


def generator_params(spec: GeneratorSpec, amp: bool = True):
    """The registered entry and validated params of a generator spec; amp=False turns the generator's amp off."""
    try:
        entry = get_generator(spec.model)
    except KeyError as exc:
        raise RecipeError(f"generator '{spec.name}': {exc.args[0]}") from exc
    try:
        params = entry.config_class.model_validate(spec.params)
    except ValidationError as exc:
        raise RecipeError(f"generator '{spec.name}' (model {spec.model}): invalid params: {exc}") from exc
    if not amp and "amp" in type(params).model_fields:
        params = params.model_copy(update={"amp": False})
    return entry, params


def load_train_images(ctx: JobContext) -> TrainImages:
    """The fold's training split from the prepare_data dependency."""
    from xaug.engine.data.prepared import load_prepared

    data = load_prepared(ctx.work_dir_of(ctx.dep_of_kind("prepare_data")))
    return data.train_images(int(ctx.config["fold"]), int(ctx.config.get("repeat", 0)))


class JobTrainHooks:
    """TrainHooks that write losses, progress and grids into the store, and ask the job whether to stop."""

    def __init__(self, ctx: JobContext):
        self.ctx = ctx
        self._last_progress = 0.0

    def progress(self, step: int, total: int, losses: dict[str, float]) -> None:
        """Record the losses (thinned to MAX_CURVE_POINTS per curve) and the progress (throttled)."""
        every = max(1, total // MAX_CURVE_POINTS)
        if step % every == 0 or step == total:
            self.ctx.metrics(step, {k: float(v) for k, v in losses.items() if np.isfinite(v)})
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_INTERVAL_S or step == total:
            self._last_progress = now
            shown = ", ".join(f"{k} {v:.3g}" for k, v in losses.items() if k in ("loss", "g_loss", "d_loss", "ada_p"))
            self.ctx.progress(step, total, f"step {step}/{total} {shown}".strip())

    def grid(self, step: int, images: np.ndarray, class_names: list[str]) -> None:
        """Save a PNG grid (one row per class) under grids/ and index it as an artifact of kind `grid`."""
        path = self.ctx.work_dir / "grids" / f"step_{step:06d}.png"
        save_png(make_grid(images, class_names), path)
        record_artifact(self.ctx.db, self.ctx.key, "grid", self.ctx.relpath(path), step=step,
                        meta={"classes": list(dict.fromkeys(class_names)),
                              "images_per_class": class_names.count(class_names[0])})

    def should_stop(self) -> bool:
        """Whether the engine asked this job to stop (it then checkpoints and returns)."""
        return self.ctx.should_stop()


def _check_classes(data: TrainImages, classes: list[str] | None) -> None:
    if classes and list(classes) != list(data.classes):
        raise DataError(f"the prepared dataset's classes {data.classes} differ from the job's classes {classes}; "
                        "re-run prepare_data for this recipe")


def run(ctx: JobContext) -> None:
    """Train (or resume) the generator of this job on its fold's training split."""
    config = ctx.config
    spec = GeneratorSpec.model_validate(config["generator"])
    entry, params = generator_params(spec, amp=bool(config.get("amp", True)))
    data = load_train_images(ctx)
    _check_classes(data, config.get("classes"))
    if not len(data.images):
        raise DataError(f"fold {config['fold']} has no training images")
    ctx.progress(0, 1, f"training {spec.name} ({spec.model}) on {len(data.images)} images")
    seed, hooks, work_dir = int(config.get("seed", 0)), JobTrainHooks(ctx), ctx.work_dir / "model"
    processes = distributed.process_count(ctx.device)
    if processes > 1 and entry.distributed:
        distributed.per_process_batch(params.batch_size, processes)  # fail before starting N processes
        print(f"train_generator: {spec.model} on {processes} processes (accelerate DDP)", flush=True)
        outcome = distributed.train_in_processes(spec.model, params, spec.per_class, data, work_dir, hooks,
                                                 ctx.device, seed, processes)
    else:
        if processes > 1:
            print(f"train_generator: {spec.model} trains on one GPU; the other {processes - 1} stay idle "
                  f"(only distributed generators use several)", flush=True)
        outcome = entry.factory().train(params, spec.per_class, data, work_dir, hooks, ctx.device, seed)
    if not outcome.finished:
        ctx.check_stop()
        raise JobInterrupted(ctx.key)  # the generator stopped on its own request: resume later all the same
    record_artifact(ctx.db, ctx.key, "checkpoint", ctx.relpath(outcome.checkpoint), step=outcome.step,
                    meta={"model": spec.model, "per_class": spec.per_class, "classes": list(data.classes)})
    ctx.progress(outcome.step, outcome.step, "done")
