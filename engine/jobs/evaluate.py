"""The `evaluate` job: score a trained classifier's best checkpoint on its fold's test split, or, when the config
says `test_set: external`, on the dataset's external test set (dataset.external_test: the images the subsample did
not draw).

Test images are touched here and only here; the checkpoint was chosen on the validation split.
"""

from __future__ import annotations

import os

import numpy as np

from xaug.engine.classifiers.checkpoint import BEST, load_weights, read_meta
from xaug.engine.classifiers.datasets import load_splits
from xaug.engine.classifiers.registry import create_classifier
from xaug.engine.classifiers.train import predict_probs
from xaug.engine.errors import StoreError
from xaug.engine.jobs.context import JobContext
from xaug.engine.jobs.train_classifier import classifier_spec
from xaug.engine.metrics.classification import classification_metrics
from xaug.store.artifacts import record_artifact
from xaug.store.metrics import record_class_metrics, record_confusion, record_results

PREDICTIONS = "predictions.npz"


def run(ctx: JobContext) -> None:
    """Predict the test split, record results, class_metrics and the confusion matrix, save predictions.npz."""
    cfg = ctx.config
    classes = list(cfg["classes"])
    train_key = ctx.dep_of_kind("train_classifier")
    best = ctx.work_dir_of(train_key) / BEST
    if not best.is_file():
        raise StoreError(f"evaluate {ctx.key[:12]}: the classifier checkpoint {best} is missing; "
                         f"re-run train_classifier job {train_key[:12]}")
    meta = read_meta(best)
    # The checkpoint holds every weight, so pretrained weights need not be present to evaluate it.
    spec = classifier_spec(cfg).model_copy(update={"pretrained": False, "weights": None})
    model = create_classifier(spec, len(classes))
    load_weights(model, best)
    model.to(ctx.device)
    test_set = cfg.get("test_set", "test")
    images, labels = load_splits(ctx, int(cfg["fold"]), (test_set,), classes, int(meta["image_size"]))[test_set]
    ctx.check_stop()
    probs = predict_probs(model, images, spec.in_chans, meta["mean"], meta["std"], ctx.device,
                          amp=bool(cfg.get("amp", True)))
    ctx.check_stop()  # before anything is recorded: a cancelled evaluate leaves no results
    scores = classification_metrics(probs, labels, classes)
    save_predictions(ctx.work_dir / PREDICTIONS, probs, labels)
    record_results(ctx.db, ctx.key, scores.results())
    record_class_metrics(ctx.db, ctx.key, scores.class_rows())
    record_confusion(ctx.db, ctx.key, classes, scores.confusion)
    record_artifact(ctx.db, ctx.key, "predictions", ctx.relpath(ctx.work_dir / PREDICTIONS))
    ctx.progress(1, 1, "done")


def save_predictions(path, probs: np.ndarray, labels: np.ndarray) -> None:
    """Write test probabilities [N,C] and labels [N] as an .npz file (atomically)."""
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, probs=probs.astype(np.float32), labels=labels.astype(np.int64))
    os.replace(tmp, path)
