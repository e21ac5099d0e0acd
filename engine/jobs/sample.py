"""Job `sample`: draw `n_per_class` synthetic images per class from a trained generator, as PNGs in the store.

Config: `generator` (GeneratorSpec dump), `fold`, `seed`, `classes`, `n_per_class`.
Writes `samples/<class>/<i:05d>.png` under the work folder and indexes each as an artifact of kind `sample`
(class_name, seed of its batch, meta.index). Images are drawn in fixed batches, each with its own seed derived from
(job seed, class, batch), so a resumed job skips the batches already on disk and produces the same images.
Precision is the training job's: each generator's manifest keeps the params it trained with (amp included, as
resources.amp set it), and its sampler reads them through the one policy of engine/precision.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xaug.engine.generators.samples import sample_path, save_png
from xaug.engine.jobs.context import JobContext
from xaug.engine.jobs.train_generator import generator_params
from xaug.engine.recipe.schema import GeneratorSpec
from xaug.store.artifacts import artifact_path, load_artifacts, record_artifacts

DEFAULT_BATCH = 64
"""Images per batch when the generator's params have no sample_batch_size."""


def batch_seed(seed: int, class_index: int, batch_index: int) -> int:
    """The seed of one batch of one class (independent streams for every class and batch)."""
    return int(np.random.SeedSequence([seed, class_index, batch_index]).generate_state(1)[0])


def checkpoint_of(ctx: JobContext) -> Path:
    """The checkpoint recorded by the train_generator dependency (its `model/` folder if none was indexed)."""
    train_key = ctx.dep_of_kind("train_generator")
    rows = load_artifacts(ctx.db, train_key, kind="checkpoint")
    if rows:
        return artifact_path(ctx.artifact_root, rows[-1]["path"])
    return ctx.work_dir_of(train_key) / "model"


def run(ctx: JobContext) -> None:
    """Sample every class in seeded batches, skipping batches whose PNGs exist already."""
    config = ctx.config
    spec = GeneratorSpec.model_validate(config["generator"])
    entry, params = generator_params(spec)
    classes, n, seed = list(config["classes"]), int(config["n_per_class"]), int(config.get("seed", 0))
    batch = int(getattr(params, "sample_batch_size", DEFAULT_BATCH))
    checkpoint = checkpoint_of(ctx)
    impl = entry.factory()
    total, done = n * len(classes), 0
    for class_index, class_name in enumerate(classes):
        for batch_index, start in enumerate(range(0, n, batch)):
            indices = list(range(start, min(start + batch, n)))
            paths = [sample_path(ctx.work_dir, class_name, i) for i in indices]
            this_seed = batch_seed(seed, class_index, batch_index)
            if not all(p.exists() for p in paths):
                images = impl.sample(checkpoint, class_name, len(paths), this_seed, ctx.device)
                for image, path in zip(images, paths):
                    save_png(image, path)
            record_artifacts(ctx.db, [
                dict(job_key=ctx.key, kind="sample", path=ctx.relpath(p), class_name=class_name, seed=this_seed,
                     meta={"index": i, "job_seed": seed}) for i, p in zip(indices, paths)])
            done += len(paths)
            ctx.progress(done, total, f"{class_name}: {indices[-1] + 1}/{n}")
            ctx.check_stop()
