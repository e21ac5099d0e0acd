"""The `image_quality` job: how close a generator's samples are to the fold's real training images, and whether any
are near-copies of them.

Config: `generator`, `fold`, `classes`, `quality` (QualityConfig dump). Depends on `sample` and `prepare_data`
(and, with quality.features = classifier, on the fold's baseline `train_classifier`).
Records `quality` rows per class and overall (class ''), each with its n_real and n_fake, and the closest
synthetic/training pairs as side-by-side PNGs (artifacts of kind `memorisation_pair`).
"""

from __future__ import annotations

import numpy as np
import torch

from xaug.engine.errors import DataError
from xaug.engine.jobs.context import JobContext
from xaug.engine.metrics.features import FeatureSpace, classifier_space, inception_space, pixel_space
from xaug.engine.metrics.memorisation import check_memorisation, pixel_vectors, save_pair_png
from xaug.engine.metrics.quality import QualityValue, feature_metrics, ms_ssim_diversity, take_fixed
from xaug.engine.recipe.schema import QualityConfig
from xaug.store.artifacts import delete_artifacts, record_artifact
from xaug.store.quality import record_quality

SUBSET_SEED = 0
"""Seed of the fixed real-image subsets, the same for every generator so that their values compare."""
MEMORISATION_QUANTILE = 1.0
"""Synthetic images nearer to a training image than 1% of held-out real images are flagged."""
PAIRS_PER_CLASS = 4
"""Closest synthetic/training pairs saved as PNGs per class."""


def run(ctx: JobContext) -> None:
    """Compute FID/KID, precision/recall, density/coverage, MS-SSIM and the memorisation check per class and
    overall, and record them."""
    config = ctx.config
    quality = QualityConfig(**config.get("quality", {}))
    fold = int(config["fold"])
    prepared = _load_prepared(ctx)
    classes = list(config.get("classes") or prepared.classes)
    train_images, train_labels = prepared.split(fold, "train")
    heldout_images, heldout_labels = _heldout(prepared, fold)
    synthetic = _load_synthetic(ctx, classes, quality.n_per_class)
    space = _feature_space(ctx, quality, classes)

    steps = len(classes) + 1
    rows: list[QualityValue] = []
    fake_parts, real_feats, fake_feats = [], [], []
    delete_artifacts(ctx.db, ctx.key, "memorisation_pair")
    for i, class_name in enumerate(classes):
        ctx.progress(i, steps, f"class {class_name}")
        ctx.check_stop()
        label = prepared.classes.index(class_name)
        real = take_fixed(train_images[train_labels == label], quality.n_per_class, SUBSET_SEED)
        fake = synthetic[class_name]
        if len(real) < 2 or len(fake) < 2:
            raise DataError(f"class '{class_name}' of fold {fold} has {len(real)} real training and {len(fake)} "
                            "synthetic images; image quality needs at least 2 of each")
        real_f, fake_f = space.embed(real), space.embed(fake)
        rows += _class_values(class_name, real_f, fake_f, fake, space.name, quality)
        if quality.memorisation:
            rows += _memorisation(ctx, class_name, fake, train_images[train_labels == label],
                                  heldout_images[heldout_labels == label], space)
        fake_parts.append(fake)
        real_feats.append(real_f)
        fake_feats.append(fake_f)
    ctx.progress(len(classes), steps, "all classes")
    rows += _class_values("", torch.cat(real_feats), torch.cat(fake_feats), np.concatenate(fake_parts), space.name,
                          quality)
    rows += _overall_memorisation(rows)
    ctx.check_stop()
    record_quality(ctx.db, ctx.key, [r.row() for r in rows])
    ctx.progress(steps, steps, f"{len(rows)} quality values")


def _load_prepared(ctx: JobContext):
    """The prepared data set of the study (images and folds) from the prepare_data dependency."""
    from xaug.engine.data.prepared import load_prepared

    return load_prepared(ctx.work_dir_of(ctx.dep_of_kind("prepare_data")))


def _heldout(prepared, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Real images never trained on in this fold (validation and test splits): the memorisation reference."""
    parts = [prepared.split(fold, name) for name in ("val", "test")]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


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


def _class_values(class_name: str, real_f: torch.Tensor, fake_f: torch.Tensor, fake: np.ndarray, features: str,
                  quality: QualityConfig) -> list[QualityValue]:
    """Feature-space metrics and MS-SSIM diversity of one class (or all, '')."""
    values = feature_metrics(real_f, fake_f, class_name=class_name, features=features,
                             kid_subset_size=quality.kid_subset_size, seed=SUBSET_SEED)
    if quality.ms_ssim:
        mean, std, pairs = ms_ssim_diversity(fake, n_pairs=min(200, len(fake) * 2), seed=SUBSET_SEED)
        values.append(QualityValue(class_name, "ms_ssim", "pixels", mean, std, 0, pairs))
    return values


def _memorisation(ctx: JobContext, class_name: str, fake: np.ndarray, train: np.ndarray, heldout: np.ndarray,
                  space: FeatureSpace) -> list[QualityValue]:
    """Near-copy check of one class in pixel space and in the feature space; saves the closest pixel pairs."""
    if len(heldout) == 0 or len(train) == 0:
        return []
    values = []
    spaces = [("pixels", pixel_vectors)]
    if space.name != "pixels":
        spaces.append((space.name, space.embed))
    for name, embed in spaces:
        result = check_memorisation(embed(fake), embed(train), embed(heldout), quantile=MEMORISATION_QUANTILE,
                                    n_closest=PAIRS_PER_CLASS)
        values += [QualityValue(class_name, "memorised_fraction", name, result.flagged_fraction, None, len(train),
                                len(fake)),
                   QualityValue(class_name, "nn_distance_ratio", name, result.distance_ratio, None, len(train),
                                len(fake))]
        if name == "pixels":
            _save_pairs(ctx, class_name, fake, train, result)
    return values


def _overall_memorisation(rows: list[QualityValue]) -> list[QualityValue]:
    """Class-weighted overall memorisation values (class ''): flagged fraction and NN-distance ratio."""
    out = []
    for metric in ("memorised_fraction", "nn_distance_ratio"):
        for features in sorted({r.features for r in rows if r.metric == metric}):
            parts = [r for r in rows if r.metric == metric and r.features == features and r.class_name]
            n_fake = sum(r.n_fake for r in parts)
            value = sum(r.value * r.n_fake for r in parts) / max(1, n_fake)
            out.append(QualityValue("", metric, features, value, None, sum(r.n_real for r in parts), n_fake))
    return out


def _save_pairs(ctx: JobContext, class_name: str, fake: np.ndarray, train: np.ndarray, result) -> None:
    """Write the closest synthetic/training pairs as PNGs and index them."""
    from xaug.engine.generators.samples import resize_images

    flagged = set(int(i) for i in result.flagged)
    for rank, pair in enumerate(result.closest):
        real = resize_images(train[pair.train_index:pair.train_index + 1], fake.shape[1])[0] \
            if train.shape[1:] != fake.shape[1:] else train[pair.train_index]
        path = save_pair_png(fake[pair.synthetic_index], real,
                             ctx.work_dir / "memorisation" / class_name / f"{rank:02d}.png")
        record_artifact(ctx.db, ctx.key, "memorisation_pair", ctx.relpath(path), class_name=class_name, step=rank,
                        meta=dict(synthetic_index=pair.synthetic_index, train_index=pair.train_index,
                                  distance=pair.distance, threshold=result.threshold,
                                  flagged=pair.synthetic_index in flagged, space="pixels"))
