"""The images a classifier job trains and is tested on: a fold's real splits, plus the arm's extra images.

Arms: `baseline` adds nothing; `synthetic` adds `amount` images per class from the generator's `sample` job;
`duplicate` adds `amount` real training images per class drawn with replacement (seeded), the count-matched
control, which augmentation then makes not quite identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xaug.engine.data.resize import resize_images
from xaug.store.errors import DataError

ARMS = ("baseline", "synthetic", "duplicate")


def _prepared(ctx) -> Any:
    """The prepare_data job's output (a `PreparedData`) for a job context."""
    from xaug.engine.data.prepared import load_prepared

    return load_prepared(ctx.work_dir_of(ctx.dep_of_kind("prepare_data")))


def load_splits(ctx, fold: int, splits: tuple[str, ...], classes: list[str],
                size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Splits of a fold (of the repetition `repeat` in the job config, 0 by default) from the prepare_data
    dependency, resized to `size`, with integer labels."""
    prepared = _prepared(ctx)
    if list(prepared.classes) != list(classes):
        raise DataError(
            f"job {ctx.key[:12]} expects classes {list(classes)} but its prepared data has {list(prepared.classes)}; "
            "re-plan the study so that the recipe's classes and the prepared dataset agree"
        )
    out = {}
    for split in splits:
        images, labels = prepared.split(fold, split, int(ctx.config.get("repeat", 0)))
        out[split] = resize_images(np.asarray(images), size), np.asarray(labels, dtype=np.int64)
    return out


def extra_images(ctx, arm: str, amount: int, classes: list[str], train_images: np.ndarray,
                 train_labels: np.ndarray, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The images an arm adds to the real training split, `amount` per class, at `size`."""
    if arm not in ARMS:
        raise DataError(f"job {ctx.key[:12]}: unknown arm '{arm}'; expected one of {', '.join(ARMS)}")
    empty = np.zeros((0, size, size), dtype=np.uint8), np.zeros((0,), dtype=np.int64)
    if arm == "baseline" or amount <= 0:
        return empty
    if arm == "synthetic":
        return synthetic_images(ctx, amount, classes, size)
    return duplicate_images(amount, classes, train_images, train_labels, seed)


def synthetic_images(ctx, amount: int, classes: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """`amount` samples per class from the job's `sample` dependency, resized to `size`."""
    from xaug.engine.generators.samples import load_samples

    sample_key = ctx.dep_of_kind("sample")
    images, labels = [], []
    for index, name in enumerate(classes):
        batch = load_samples(ctx.db, ctx.artifact_root, sample_key, name, amount)
        images.append(resize_images(batch, size))
        labels.append(np.full(len(batch), index, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def duplicate_images(amount: int, classes: list[str], train_images: np.ndarray, train_labels: np.ndarray,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`amount` real training images per class drawn with replacement, reproducibly for a seed."""
    rng = np.random.default_rng([seed, amount, 0xD0])
    picks = []
    for index, name in enumerate(classes):
        members = np.flatnonzero(train_labels == index)
        if len(members) == 0:
            raise DataError(f"class '{name}' has no training images in this fold, so it cannot be duplicated; "
                            "use fewer folds or check the dataset's labels")
        picks.append(rng.choice(members, size=amount, replace=True))
    idx = np.concatenate(picks)
    return train_images[idx], train_labels[idx]
