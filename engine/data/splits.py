"""Patient-level stratified k-fold splits, with a validation split carved from each fold's training patients.

Implemented here (no scikit-learn dependency) as a greedy stratified group k-fold: patients, shuffled by the
seed and then taken largest first, each go to the fold where adding their images keeps the per-class share of
every fold closest to 1/k. All images of a patient land in the same fold, so no patient is ever in both the
training and the test split. The validation patients of a fold are drawn per class (by each patient's majority
label) from that fold's training patients. Every patient has one class: the loaders refuse one patient id under
two classes (naming both files), and so does `make_folds`, rather than file the patient under its majority class.

Repeated k-fold (`splits.repeats`): each repetition is a fresh patient partition made the same way with its own
split seed (`split_seed`), so the folds of different repetitions overlap only by chance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xaug.engine.errors import DataError
from xaug.engine.recipe.schema import SplitsConfig

SPLIT_NAMES = ("train", "val", "test")
EXTERNAL = "external"
"""The external test set (dataset.external_test) where a split name is expected: the same images for every fold."""


@dataclass(frozen=True)
class Fold:
    """Image indices (sorted) of the three splits of one fold."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def indices(self, split: str) -> np.ndarray:
        """Indices of 'train', 'val' or 'test'."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"unknown split {split!r}; splits are {', '.join(SPLIT_NAMES)}")
        return getattr(self, split)


def make_folds(patients: Sequence[str], labels: Sequence[int], classes: Sequence[str], cfg: SplitsConfig) -> list[Fold]:
    """Stratified group k-fold over images (patients as groups, labels index `classes`) plus validation splits.

    Deterministic in cfg.seed: the same patients, labels and config give the same folds.
    """
    n_classes = len(classes)
    patient_ids, patient_of = np.unique(np.asarray(patients, dtype=str), return_inverse=True)
    labels = np.asarray(labels, dtype=int)
    counts = np.zeros((len(patient_ids), n_classes), dtype=np.int64)
    np.add.at(counts, (patient_of, labels), 1)
    if ((counts > 0).sum(axis=1) > 1).any():
        raise DataError("splits: a patient has images of more than one class; patient-level splits need one class"
                        " per patient. Fix the patient ids of the dataset (the loaders name the two files)")
    majority = counts.argmax(axis=1)
    _check_enough_patients(majority, classes, cfg.folds)
    fold_of_patient = _assign_folds(counts, cfg.folds, np.random.default_rng([cfg.seed, 0]))
    folds = []
    for k in range(cfg.folds):
        train_patients = np.flatnonzero(fold_of_patient != k)
        val_patients = _validation_patients(train_patients, majority, cfg.validation_fraction,
                                            np.random.default_rng([cfg.seed, 1, k]))
        split_of_patient = np.full(len(patient_ids), 0)
        split_of_patient[val_patients] = 1
        split_of_patient[fold_of_patient == k] = 2
        split_of_image = split_of_patient[patient_of]
        folds.append(Fold(*(np.flatnonzero(split_of_image == s) for s in range(3))))
    return folds


def split_seed(seed: int, repeat: int) -> int:
    """The split seed of one repetition: `seed` itself for repeat 0 (a one-repeat study keeps its folds), then a
    seed derived deterministically from (seed, repeat) by numpy's SeedSequence."""
    if repeat == 0:
        return seed
    return int(np.random.SeedSequence([seed, repeat]).generate_state(1)[0])


def make_repeated_folds(patients: Sequence[str], labels: Sequence[int], classes: Sequence[str],
                        cfg: SplitsConfig) -> list[list[Fold]]:
    """The folds of every repetition of the k-fold split: [repeat][fold], each repetition a fresh partition."""
    return [make_folds(patients, labels, classes, cfg.model_copy(update={"seed": split_seed(cfg.seed, r)}))
            for r in range(cfg.repeats)]


def _check_enough_patients(majority: np.ndarray, classes: Sequence[str], k: int) -> None:
    """Every class needs at least k patients, or some test split would have none of it."""
    per_class = np.bincount(majority, minlength=len(classes))
    short = [(classes[c], int(n)) for c, n in enumerate(per_class) if n < k]
    if short:
        detail = ", ".join(f"{name}: {n}" for name, n in short)
        raise DataError(f"splits: too few patients for {k} folds ({detail}); every class needs at least as many"
                        " patients as folds. Lower splits.folds or add data")


def _assign_folds(counts: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy assignment of patients (rows of per-class image counts) to k folds, balancing every class."""
    totals = np.maximum(counts.sum(axis=0), 1).astype(float)
    order = rng.permutation(len(counts))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]  # large patients first, ties shuffled
    fold_counts = np.zeros((k, counts.shape[1]))
    fold_sizes = np.zeros(k)
    fold_of = np.empty(len(counts), dtype=int)
    for p in order:
        # Spread of each class's share over folds if p went to fold f, for every f at once.
        trial = fold_counts[None, :, :] + np.eye(k)[:, :, None] * counts[p][None, None, :]
        cost = ((trial / totals).std(axis=1)).sum(axis=1)
        best = np.flatnonzero(np.isclose(cost, cost.min()))
        f = best[np.argmin(fold_sizes[best])]
        fold_of[p] = f
        fold_counts[f] += counts[p]
        fold_sizes[f] += counts[p].sum()
    return fold_of


def _validation_patients(train_patients: np.ndarray, majority: np.ndarray, fraction: float,
                         rng: np.random.Generator) -> np.ndarray:
    """About `fraction` of the training patients of each majority class (at least one where a class has two)."""
    chosen = []
    for c in np.unique(majority[train_patients]):
        members = train_patients[majority[train_patients] == c]
        n_val = int(round(fraction * len(members)))
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        chosen.append(rng.permutation(members)[:n_val])
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=int)
