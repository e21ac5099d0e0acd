"""Limited-data subsampling: a seeded, patient-level subset of a dataset with target image counts per class.

Per class, the patients are shuffled by the seed and taken in that order, each one only when its images do not
take the class past its target. When that stops short (the patients left are all too large for the gap), the gap
is filled exactly from the patients not taken, if some set of them fits it, else by swapping one taken patient for
such a set; only when no such fill exists does the draw stop just below its target. Whole patients are taken or
left, so no patient is on both sides; the rest of the data can serve as an external test set
(dataset.external_test). A class with fewer images than its target is an error that says how many it has.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xaug.engine.data.records import ImageRecord
from xaug.store.errors import DataError
from xaug.engine.recipe.schema import DatasetConfig, SubsampleConfig


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
    """The records not drawn (draw_subsample), or the external test set's (study_and_external)."""
    draws: list[ClassDraw]


def study_and_external(records: Sequence[ImageRecord], classes: Sequence[str], cfg: DatasetConfig) -> Subsample:
    """The study's records as `selected` (dataset.subsample's draw, or all) and the external test set's as `rest`
    (dataset.external_test: the records not drawn, at most external_test_per_class per class by whole patients)."""
    none = np.empty(0, dtype=np.int64)
    if cfg.subsample is None:
        return Subsample(np.arange(len(records)), none, [])
    draw = draw_subsample(records, classes, cfg.subsample)
    if not cfg.external_test:
        return Subsample(draw.selected, none, draw.draws)
    rest = draw.rest
    if cfg.external_test_per_class is not None:
        rest_records = [records[i] for i in rest]
        caps = {name: min(cfg.external_test_per_class, n) for name, n in Counter(r.label for r in rest_records).items()}
        rest = rest[draw_subsample(rest_records, classes, SubsampleConfig(per_class=caps, seed=cfg.subsample.seed + 1)
                                   ).selected]
    if not len(rest):
        raise DataError("dataset.external_test: the subsample drew every image, so the external test set would be"
                        " empty; lower dataset.subsample's targets or set external_test: false")
    return Subsample(draw.selected, rest, draw.draws)


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
        shuffled = [order[p] for p in np.random.default_rng([cfg.seed, c]).permutation(len(order))]
        sizes = [len(patients[p]) for p in shuffled]
        taken = _draw_patients(sizes, target)
        selected.extend(i for k in taken for i in patients[shuffled[k]])
        draws.append(ClassDraw(name, target, n_images, len(patients), sum(sizes[k] for k in taken), len(taken)))
    chosen = np.zeros(len(records), dtype=bool)
    chosen[selected] = True
    return Subsample(np.flatnonzero(chosen), np.flatnonzero(~chosen), draws)


def _draw_patients(sizes: list[int], target: int) -> list[int]:
    """Indices of the patients (image counts `sizes`, in drawing order) taken for one class: greedily in order,
    then the gap filled exactly from the others, or by one swap, when that is possible."""
    taken, total = [], 0
    for k, n in enumerate(sizes):
        if total + n <= target:
            taken.append(k)
            total += n
    if total == target:
        return taken
    chosen = set(taken)
    others = [k for k in range(len(sizes)) if k not in chosen]
    fill = _exact_sum(others, sizes, target - total)
    if fill is not None:
        return taken + fill
    last_of_size = {sizes[k]: k for k in taken}  # one swap per size is enough: same-size patients swap alike
    for out in sorted(last_of_size.values(), reverse=True):  # the last drawn first
        fill = _exact_sum(others, sizes, target - total + sizes[out])
        if fill is not None:
            return [k for k in taken if k != out] + fill
    return taken


def _exact_sum(candidates: list[int], sizes: list[int], gap: int) -> list[int] | None:
    """Candidates (earliest first) whose sizes add up to exactly `gap`, or None (a subset sum over reachable
    totals up to the gap, which is at most a few patients' images)."""
    per_size: dict[int, int] = defaultdict(int)
    useful = []  # no sum up to the gap uses more than gap // n patients of n images: the rest cannot matter
    for k in candidates:
        if per_size[sizes[k]] < gap // sizes[k]:
            per_size[sizes[k]] += 1
            useful.append(k)
    reach: dict[int, list[int]] = {0: []}
    for k in useful:
        for total, chosen in list(reach.items()):
            if total + sizes[k] <= gap and total + sizes[k] not in reach:
                reach[total + sizes[k]] = chosen + [k]
        if gap in reach:
            return reach[gap]
    return None


def _target(name: str, n_images: int, cfg: SubsampleConfig) -> int:
    """Target images of one class: its per_class entry (all its images when not listed), or the fraction."""
    if cfg.per_class is not None:
        return cfg.per_class.get(name, n_images)
    return max(1, round(cfg.fraction * n_images))
