"""Patient-level stratified k-fold: no patient in two splits of a fold, every patient tested exactly once."""

from __future__ import annotations

import numpy as np
import pytest

from xaug.engine.data.splits import SPLIT_NAMES, make_folds, make_repeated_folds, split_seed
from xaug.store.errors import DataError
from xaug.engine.recipe.schema import SplitsConfig

CLASSES = ["healthy", "bacterial", "viral", "fungal", "covid19"]


def _dataset(seed: int = 0, mixed: bool = False):
    """Patients with 1-4 images, imbalanced classes; with `mixed`, some patients have images of two classes."""
    rng = np.random.default_rng(seed)
    patients, labels = [], []
    for p in range(300):
        label = int(rng.choice(5, p=[0.6, 0.1, 0.08, 0.12, 0.1]))
        for _ in range(int(rng.integers(1, 5))):
            patients.append(f"patient-{p}")
            labels.append(label if not (mixed and rng.uniform() < 0.05) else int(rng.integers(5)))
    return np.array(patients), np.array(labels)


@pytest.mark.parametrize("folds,fraction,seed", [(5, 0.15, 0), (3, 0.3, 1), (10, 0.1, 7)])
def test_no_patient_in_two_splits_and_each_tested_once(folds, fraction, seed):
    patients, labels = _dataset(seed)
    result = make_folds(patients, labels, CLASSES, SplitsConfig(folds=folds, validation_fraction=fraction, seed=seed))
    assert len(result) == folds
    tested = []
    for fold in result:
        members = {name: set(patients[fold.indices(name)]) for name in SPLIT_NAMES}
        assert not members["train"] & members["val"]
        assert not members["train"] & members["test"]
        assert not members["val"] & members["test"]
        # Every image is in exactly one split of the fold.
        all_idx = np.concatenate([fold.indices(name) for name in SPLIT_NAMES])
        assert np.array_equal(np.sort(all_idx), np.arange(len(patients)))
        assert len(members["val"]) > 0
        tested.extend(members["test"])
    assert sorted(tested) == sorted(set(patients))  # each patient in exactly one test split


def test_folds_are_stratified_and_deterministic():
    patients, labels = _dataset(3)
    cfg = SplitsConfig(folds=5, seed=11)
    folds = make_folds(patients, labels, CLASSES, cfg)
    again = make_folds(patients, labels, CLASSES, cfg)
    assert all(np.array_equal(a.test, b.test) and np.array_equal(a.val, b.val) for a, b in zip(folds, again))
    other = make_folds(patients, labels, CLASSES, SplitsConfig(folds=5, seed=12))
    assert not all(np.array_equal(a.test, b.test) for a, b in zip(folds, other))
    totals = np.bincount(labels, minlength=5)
    for fold in folds:
        share = np.bincount(labels[fold.test], minlength=5) / totals
        assert np.all(np.abs(share - 0.2) < 0.08), share  # each class ~1/5 in each test split
        val_classes = set(labels[fold.val])
        assert val_classes == set(range(5))  # every class is represented in validation


def test_too_few_patients_for_the_folds():
    patients = np.array(["a", "a", "b", "c", "d", "e", "f"])
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    with pytest.raises(DataError, match=r"bacterial: 3.*Lower splits.folds"):
        make_folds(patients, labels, ["healthy", "bacterial"], SplitsConfig(folds=4))


def test_repeated_k_fold_gives_fresh_valid_partitions():
    patients, labels = _dataset(2)
    cfg = SplitsConfig(folds=5, seed=4, repeats=3)
    repeats = make_repeated_folds(patients, labels, CLASSES, cfg)
    assert len(repeats) == 3 and all(len(folds) == 5 for folds in repeats)
    # the first repetition is the plain k-fold split: a one-repeat study keeps its folds
    first = make_folds(patients, labels, CLASSES, SplitsConfig(folds=5, seed=4))
    assert all(np.array_equal(a.test, b.test) for a, b in zip(repeats[0], first))
    test_fold = []
    for folds in repeats:
        # each repetition on its own: every patient tested exactly once, never in two splits of a fold
        fold_of = {}
        for k, fold in enumerate(folds):
            for i in fold.test:
                assert fold_of.setdefault(patients[i], k) == k
            assert not {patients[i] for i in fold.train} & {patients[i] for i in fold.test}
        assert set(fold_of) == set(patients)
        test_fold.append(fold_of)
    # fresh partitions: the patients sharing a test fold in repeat 0 are scattered in repeat 1 and 2
    for other in test_fold[1:]:
        together = [len({other[p] for p, k in test_fold[0].items() if k == fold}) for fold in range(5)]
        assert min(together) == 5
    assert len({split_seed(4, r) for r in range(3)}) == 3 and split_seed(4, 0) == 4
    again = make_repeated_folds(patients, labels, CLASSES, cfg)  # deterministic
    assert all(np.array_equal(a.test, b.test) for r in range(3) for a, b in zip(repeats[r], again[r]))


def test_a_patient_under_two_classes_is_refused_not_reassigned():
    patients, labels = _dataset(0, mixed=True)
    with pytest.raises(DataError, match="more than one class"):
        make_folds(patients, labels, CLASSES, SplitsConfig(folds=5))
