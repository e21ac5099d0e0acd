"""Classification metrics of one test split, with torchmetrics: overall, per class, and the confusion matrix.

A class that never occurs in the labels has no defined AUROC (one-vs-rest needs positives and negatives): its
AUROC is None and the macro AUROC averages the classes where it is defined. Macro recall/F1 follow torchmetrics:
a class absent from both labels and predictions does not count in the average.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)


@dataclass(frozen=True)
class ClassMetrics:
    """One class's scores on the test split."""

    class_name: str
    precision: float
    recall: float
    f1: float
    auroc: float | None
    """One-vs-rest AUROC; None when the class has no positive (or no negative) test image."""
    support: int
    """Number of test images of this class."""


@dataclass(frozen=True)
class ClassificationMetrics:
    """Overall and per-class scores of predictions on one test split."""

    accuracy: float
    balanced_accuracy: float
    """Mean recall over classes (macro recall)."""
    macro_f1: float
    auroc: float | None
    """Macro one-vs-rest AUROC over classes where it is defined."""
    per_class: list[ClassMetrics]
    confusion: list[list[int]]
    """Rows: true class, columns: predicted class."""

    def results(self) -> dict[str, float]:
        """The scalar results, as recorded in the store (auroc omitted when undefined)."""
        out = dict(accuracy=self.accuracy, balanced_accuracy=self.balanced_accuracy, macro_f1=self.macro_f1)
        if self.auroc is not None:
            out["auroc"] = self.auroc
        return out

    def class_rows(self) -> list[dict]:
        """Per-class rows for `xaug.store.metrics.record_class_metrics`."""
        return [c.__dict__.copy() for c in self.per_class]


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> ClassificationMetrics:
    """Scores of class probabilities [N,C] against integer labels [N]; the prediction is the arg-max class."""
    p = torch.as_tensor(np.asarray(probs), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    c = len(classes)
    if p.ndim != 2 or p.shape[1] != c or p.shape[0] != y.shape[0]:
        raise ValueError(f"probabilities {tuple(p.shape)} do not match {y.shape[0]} labels and {c} classes")
    if y.numel() == 0:
        raise ValueError("cannot score an empty test split")
    pred = p.argmax(1)
    support = torch.bincount(y, minlength=c)
    precision = multiclass_precision(pred, y, c, average=None, zero_division=0)
    recall = multiclass_recall(pred, y, c, average=None, zero_division=0)
    f1 = multiclass_f1_score(pred, y, c, average=None, zero_division=0)
    aurocs = _per_class_auroc(p, y, support)
    defined = [a for a in aurocs if a is not None]
    per_class = [
        ClassMetrics(class_name=name, precision=float(precision[i]), recall=float(recall[i]), f1=float(f1[i]),
                     auroc=aurocs[i], support=int(support[i]))
        for i, name in enumerate(classes)
    ]
    return ClassificationMetrics(
        accuracy=float(multiclass_accuracy(pred, y, c, average="micro")),
        balanced_accuracy=float(multiclass_recall(pred, y, c, average="macro", zero_division=0)),
        macro_f1=float(multiclass_f1_score(pred, y, c, average="macro", zero_division=0)),
        auroc=float(np.mean(defined)) if defined else None,
        per_class=per_class,
        confusion=multiclass_confusion_matrix(pred, y, c).tolist(),
    )


def _per_class_auroc(probs: torch.Tensor, labels: torch.Tensor, support: torch.Tensor) -> list[float | None]:
    """One-vs-rest AUROC per class; None where the class has no positives or no negatives."""
    n = labels.numel()
    with warnings.catch_warnings():  # torchmetrics warns about the classes we report as None below
        warnings.simplefilter("ignore", UserWarning)
        values = multiclass_auroc(probs, labels, probs.shape[1], average=None, thresholds=None)
    out: list[float | None] = []
    for i in range(probs.shape[1]):
        value = float(values[i])
        out.append(value if 0 < int(support[i]) < n and not math.isnan(value) else None)
    return out
