"""Limited-data subsampling: a seeded, patient-level subset of a dataset with target image counts per class.

Per class, the patients are shuffled by the seed and taken in that order, each one only when its images do not
take the class past its target; so the subset hits the target exactly whenever the remaining patients allow it
(always when enough patients have one image), and otherwise stops just below it. Whole patients are taken or
left, so no patient is on both sides; the rest of the data can serve as an external test set
(dataset.external_test). A class with fewer images than its target is an error that says how many it has.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xaug.engine.data.records import ImageRecord
from xaug.engine.errors import DataError
from xaug.engine.recipe.schema import SubsampleConfig


@dataclass(frozen=True)
class ClassDraw:
    """What the draw did for one class."""

    class_name: str
    target: int
    available_images: int
    available_patients: int
    selected_images: int
    selected_patients: int


@dataclass(frozen=True)
class Subsample:
    """Which records were drawn (indices into the record list, sorted) and the rest; one ClassDraw per class."""

    selected: np.ndarray
    rest: np.ndarray
    draws: list[ClassDraw]


def draw_subsample(records: Sequence[ImageRecord], classes: Sequence[str], cfg: SubsampleConfig) -> Subsample:
    """Draw the patient-level subset of `records` (see the module docstring); deterministic in cfg.seed."""
    unknown = sorted(set(cfg.per_class or {}) - set(classes))
    if unknown:
        raise DataError(f"dataset.subsample.per_class names {unknown}, which are not classes of the dataset"
                        f" {list(classes)}")
    by_class: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, record in enumerate(records):
        by_class[record.label][record.patient_id].append(i)
    selected: list[int] = []
    draws = []
    for c, name in enumerate(classes):
        patients = by_class[name]
        n_images = sum(len(images) for images in patients.values())
        target = _target(name, n_images, cfg)
        if target > n_images:
            raise DataError(f"dataset.subsample: class '{name}' has {n_images} images from {len(patients)} patients,"
                            f" fewer than its target {target}; lower the target or add data")
        order = sorted(patients)  # a stable order before the seeded shuffle (dict order follows the file)
        rng = np.random.default_rng([cfg.seed, c])
        taken, n_patients = 0, 0
        for p in rng.permutation(len(order)):
            images = patients[order[p]]
            if taken + len(images) <= target:
                selected.extend(images)
                taken += len(images)
                n_patients += 1
            if taken == target:
                break
        draws.append(ClassDraw(name, target, n_images, len(patients), taken, n_patients))
    chosen = np.zeros(len(records), dtype=bool)
    chosen[selected] = True
    return Subsample(np.flatnonzero(chosen), np.flatnonzero(~chosen), draws)


def _target(name: str, n_images: int, cfg: SubsampleConfig) -> int:
    """Target images of one class: its per_class entry (all its images when not listed), or the fraction."""
    if cfg.per_class is not None:
        return cfg.per_class.get(name, n_images)
    return max(1, round(cfg.fraction * n_images))
