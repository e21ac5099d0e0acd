"""The `image_quality` job: how close a generator's samples are to the fold's real images, and whether any are
near-copies of the training images.

Config: `generator`, `fold`, `classes`, `quality` (QualityConfig dump). Depends on `sample` and `prepare_data`
(and, with quality.features = classifier, on the fold's baseline `train_classifier`).

Real and synthetic images are first brought to one side (`comparison_side`) by one resize (`at_side`). Every class
is then compared with two references: the fold's training images (what the generator learnt from) and its held-out
validation images (never the test split). Records `quality` rows per class and reference, each with its n_real,
n_fake and a `meaningful` flag; the overall rows (class '') are macro-averages of the meaningful per-class values.
MS-SSIM is recorded for synthetic pairs (reference '') and for real pairs of each reference (`ms_ssim_real`).
The closest synthetic/training pairs are saved as side-by-side PNGs (artifacts of kind `memorisation_pair`).
"""

from __future__ import annotations

import numpy as np
import torch

from xaug.engine.errors import DataError
from xaug.engine.jobs.context import JobContext
from xaug.engine.metrics.features import FeatureSpace, classifier_space, inception_space, pixel_space
from xaug.engine.metrics.memorisation import (Threshold, check_memorisation, near_copy_threshold,
                                              nearest_neighbours, pixel_vectors, save_pair_png)
from xaug.engine.metrics.quality import (K_NEIGHBOURS, QualityValue, at_side, comparison_side, feature_metrics,
                                         fixed_index, macro_average, ms_ssim_diversity)
from xaug.engine.recipe.schema import QualityConfig
from xaug.store.artifacts import artifact_path, delete_artifacts, record_artifact
from xaug.store.quality import record_quality

SUBSET_SEED = 0
"""Seed of the fixed real-image subsets, the same for every generator so that their values compare."""
PAIRS_PER_CLASS = 4
"""Closest synthetic/training pairs saved as PNGs per class."""
REFERENCE_SPLITS = {"train": "train", "heldout": "val"}
"""Reference name -> split of the fold it is drawn from. The test split is never a reference."""
MS_SSIM_PAIRS = 200
"""Random pairs per MS-SSIM value (fewer when a set is small)."""
NO_THRESHOLD = float("-inf")
"""Passed as the near-copy threshold when there is none: no distance is below it, so nothing is flagged."""


def run(ctx: JobContext) -> None:
    """Compute FID/KID, precision/recall, density/coverage and MS-SSIM against the training and the held-out
    reference, and the memorisation check, per class and overall (macro-average), and record them."""
    config = ctx.config
    quality = QualityConfig(**config.get("quality", {}))
    fold = int(config["fold"])
    prepared = _load_prepared(ctx)
    classes = list(config.get("classes") or prepared.classes)
    synthetic = _load_synthetic(ctx, classes, quality.n_per_class)
    repeat = int(config.get("repeat", 0))  # repetition of the k-fold split (repeated k-fold)
    references = {name: prepared.split(fold, split, repeat) for name, split in REFERENCE_SPLITS.items()}
    side = _side(quality, references["train"][0], synthetic)
    space = _feature_space(ctx, quality, classes)

    steps = len(classes) + 1
    rows: list[QualityValue] = []
    per_class = {}
    delete_artifacts(ctx.db, ctx.key, "memorisation_pair")
    for i, class_name in enumerate(classes):
        ctx.progress(i, steps, f"class {class_name}")
        ctx.check_stop()
        label = prepared.classes.index(class_name)
        fake = at_side(synthetic[class_name], side)
        real = {name: at_side(images[labels == label], side) for name, (images, labels) in references.items()}
        if len(real["train"]) < 2 or len(fake) < 2:
            raise DataError(f"class '{class_name}' of fold {fold} has {len(real['train'])} real training and "
                            f"{len(fake)} synthetic images; image quality needs at least 2 of each")
        fake_f = space.embed(fake)
        rows += _diversity(class_name, fake, real, quality)
        for name, images in real.items():
            rows += _against(class_name, name, images, fake_f, space, quality)
        per_class[class_name] = (fake, real["train"], real["heldout"])
    ctx.progress(len(classes), steps, "memorisation")
    if quality.memorisation:
        rows += _memorisation(ctx, per_class, space, quality)
    rows += macro_average(rows, classes)
    ctx.check_stop()
    record_quality(ctx.db, ctx.key, [r.row() for r in rows])
    ctx.progress(steps, steps, f"{len(rows)} quality values at {side} px")


def _side(quality: QualityConfig, real: np.ndarray, synthetic: dict[str, np.ndarray]) -> int:
    """The comparison side: quality.image_size, else the smaller of the stored real and the sampled images."""
    fake_sides = [int(images.shape[-1]) for images in synthetic.values() if images.size]
    return comparison_side(quality.image_size, int(real.shape[-1]), min(fake_sides, default=int(real.shape[-1])))


def _against(class_name: str, reference: str, real: np.ndarray, fake_f: torch.Tensor, space: FeatureSpace,
             quality: QualityConfig) -> list[QualityValue]:
    """Feature-space metrics of one class's samples against a fixed subset of one reference's real images."""
    if len(real) <= K_NEIGHBOURS or len(fake_f) <= K_NEIGHBOURS:
        return []  # no k-NN ball can be drawn: left out, and the overall rows' note names the class
    real_f = space.embed(real[fixed_index(len(real), quality.n_per_class, SUBSET_SEED)])
    return feature_metrics(real_f, fake_f, class_name=class_name, features=space.name, reference=reference,
                           kid_subset_size=quality.kid_subset_size, seed=SUBSET_SEED, min_images=quality.min_images)


def _diversity(class_name: str, fake: np.ndarray, real: dict[str, np.ndarray], quality: QualityConfig
               ) -> list[QualityValue]:
    """MS-SSIM among synthetic pairs and, as their yardstick, among real pairs of each reference (same side)."""
    if not quality.ms_ssim:
        return []
    mean, std, pairs = ms_ssim_diversity(fake, n_pairs=min(MS_SSIM_PAIRS, len(fake) * 2), seed=SUBSET_SEED)
    values = [QualityValue(class_name, "ms_ssim", "pixels", mean, std, 0, pairs, reference="")]
    for name, images in real.items():
        if len(images) < 2:
            continue
        mean, std, pairs = ms_ssim_diversity(images, n_pairs=min(MS_SSIM_PAIRS, len(images) * 2), seed=SUBSET_SEED)
        values.append(QualityValue(class_name, "ms_ssim_real", "pixels", mean, std, pairs, 0, reference=name))
    return values


def _load_prepared(ctx: JobContext):
    """The prepared data set of the study (images and folds) from the prepare_data dependency."""
    from xaug.engine.data.prepared import load_prepared

    return load_prepared(ctx.work_dir_of(ctx.dep_of_kind("prepare_data")))


def _sample_count(ctx: JobContext, sample_key: str) -> int | None:
    """How many images per class the sample job made (its config's n_per_class), when known."""
    row = ctx.deps[sample_key]
    config = row.get("config")
    if config is None and row.get("config_json"):
        import json

        config = json.loads(row["config_json"])
    return (config or {}).get("n_per_class")


def _load_synthetic(ctx: JobContext, classes: list[str], n_per_class: int) -> dict[str, np.ndarray]:
    """n_per_class synthetic images per class (fewer if the sample job made fewer) from the sample dependency."""
    from xaug.engine.generators.samples import load_samples

    sample_key = ctx.dep_of_kind("sample")
    available = _sample_count(ctx, sample_key)
    n = n_per_class if available is None else min(n_per_class, int(available))
    return {c: load_samples(ctx.db, ctx.artifact_root, sample_key, c, n) for c in classes}


def _feature_space(ctx: JobContext, quality: QualityConfig, classes: list[str]) -> FeatureSpace:
    """The feature space named by quality.features."""
    if quality.features == "pixels":
        return pixel_space()
    if quality.features == "inception":
        return inception_space(quality.inception_weights, device=ctx.device)
    return _classifier_space(ctx, classes)


def _classifier_space(ctx: JobContext, classes: list[str]) -> FeatureSpace:
    """Penultimate-layer features of the fold's real-only (baseline) classifier, from a train_classifier dependency."""
    from xaug.engine.classifiers.checkpoint import BEST, load_weights
    from xaug.engine.classifiers.registry import input_stats
    from xaug.engine.recipe.schema import ClassifierSpec

    keys = [k for k in ctx.deps_of_kind("train_classifier")
            if (ctx.deps[k].get("config") or {}).get("arm", "baseline") == "baseline"]
    if not keys:
        raise DataError(
            "quality.features is 'classifier' but this image_quality job has no baseline train_classifier "
            "dependency to take features from; use features: pixels or inception, or plan the dependency")
    dep = ctx.deps[keys[0]]
    spec = ClassifierSpec(**{**dep["config"]["classifier"], "pretrained": False, "weights": None})
    import timm

    model = timm.create_model(spec.model, pretrained=False, num_classes=len(classes), in_chans=spec.in_chans,
                              **spec.model_kwargs)
    load_weights(model, ctx.work_dir_of(keys[0]) / BEST)
    mean, std = input_stats(model, spec.in_chans)
    size = spec.image_size or int(dep["config"].get("image_size") or 224)
    return classifier_space(model, size, spec.in_chans, ctx.device, mean, std)


def _memorisation(ctx: JobContext, per_class: dict, space: FeatureSpace, quality: QualityConfig
                  ) -> list[QualityValue]:
    """Near-copy check per class, in pixel space and in the feature space; saves the closest pixel-space pairs.

    The threshold is a percentile of held-out images' distances to the training images of their class, taken over
    the class's own held-out images when there are quality.memorisation_min_heldout of them, else over all classes'
    (see `near_copy_threshold`); without enough held-out images no near-copy rate is recorded, only a note."""
    spaces = [("pixels", pixel_vectors)] + ([(space.name, space.embed)] if space.name != "pixels" else [])
    values = []
    for name, embed in spaces:
        embedded = {c: tuple(embed(x) if len(x) else None for x in sets) for c, sets in per_class.items()}
        heldout_d = {c: nearest_neighbours(held, train)[0] if held is not None else np.zeros(0)
                     for c, (_, train, held) in embedded.items()}
        pooled = np.concatenate(list(heldout_d.values()))
        for class_name, (fake_f, train_f, held_f) in embedded.items():
            threshold = near_copy_threshold(heldout_d[class_name], pooled, quality.memorisation_quantile,
                                            quality.memorisation_min_heldout)
            fake, train, _ = per_class[class_name]
            values += _near_copies(ctx, class_name, name, fake, train, fake_f, train_f, held_f, threshold, quality)
    return values


def _near_copies(ctx: JobContext, class_name: str, features: str, fake: np.ndarray, train: np.ndarray,
                 fake_f: torch.Tensor, train_f: torch.Tensor, held_f: torch.Tensor | None, threshold: Threshold,
                 quality: QualityConfig) -> list[QualityValue]:
    """The near-copy rate and NN-distance ratio of one class in one space, noting where the threshold came from."""
    source = (f"threshold: percentile {quality.memorisation_quantile:g} of {threshold.n_heldout} held-out "
              f"(validation) images of {'this class' if threshold.source == 'class' else 'all classes'}")
    result = check_memorisation(fake_f, train_f, held_f, n_closest=PAIRS_PER_CLASS,
                                threshold=NO_THRESHOLD if threshold.value is None else threshold.value)
    missing = None if threshold.value is not None else (
        f"no near-copy rate: {threshold.n_heldout} held-out images in all, fewer than "
        f"quality.memorisation_min_heldout ({quality.memorisation_min_heldout}) needed for a percentile")
    values = []
    if held_f is not None:  # the distance ratio needs held-out images of this class
        note = f"median over {len(held_f)} held-out images of this class" + (f"; {missing}" if missing else "")
        values.append(QualityValue(class_name, "nn_distance_ratio", features, result.distance_ratio, None,
                                   len(train), len(fake), note=note))
    if missing is None:  # without a threshold there is no rate to record (never an invented 0)
        values.append(QualityValue(class_name, "memorised_fraction", features, result.flagged_fraction, None,
                                   len(train), len(fake), note=source))
    if features == "pixels":
        _save_pairs(ctx, class_name, fake, train, result, threshold.value is not None)
    return values


def _save_pairs(ctx: JobContext, class_name: str, fake: np.ndarray, train: np.ndarray, result,
                has_threshold: bool) -> None:
    """Write the closest synthetic/training pairs (both at the comparison side) as PNGs and index them."""
    flagged = set(int(i) for i in result.flagged)
    for rank, pair in enumerate(result.closest):
        path = save_pair_png(fake[pair.synthetic_index], train[pair.train_index],
                             artifact_path(ctx.work_dir, "memorisation", class_name, f"{rank:02d}.png"))
        record_artifact(ctx.db, ctx.key, "memorisation_pair", ctx.relpath(path), class_name=class_name, step=rank,
                        meta=dict(synthetic_index=pair.synthetic_index, train_index=pair.train_index,
                                  distance=pair.distance, threshold=result.threshold if has_threshold else None,
                                  flagged=pair.synthetic_index in flagged if has_threshold else None,
                                  space="pixels"))
