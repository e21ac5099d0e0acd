"""What the loader sees in a dataset before anything runs (`xaug data inspect RECIPE`).

Uses the loaders themselves (`load_records`, the subsample draw), so what it shows is what prepare_data will get:
classes with image and patient counts, the rows or files each rule skipped with the first examples, images per
patient, and the sizes and modes of a seeded sample of image headers (pixels are not decoded).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from xaug.engine.data.images import image_geometry
from xaug.engine.data.labels import SKIP_RULES, skip_rule
from xaug.engine.data.records import RecordSet
from xaug.engine.data.sources import load_records
from xaug.engine.data.subsample import ClassDraw, study_and_external
from xaug.store.errors import DataError
from xaug.engine.recipe.schema import DatasetConfig

EXAMPLES = 3
"""Examples shown per skip rule."""


@dataclass(frozen=True)
class ClassCount:
    """Images and patients of one class, as loaded (before any subsample)."""

    name: str
    images: int
    patients: int


@dataclass(frozen=True)
class SkipCount:
    """Rows or files one rule skipped: how many, and the first few as (source, reason)."""

    rule: str
    count: int
    examples: list[tuple[str, str]]


@dataclass
class Inspection:
    """Everything `xaug data inspect` shows."""

    classes: list[ClassCount]
    skips: list[SkipCount]
    images_per_patient: dict[str, int]
    """Patients by their number of images: '1', '2', '3-5', '6-10', '>10'."""
    geometries: list[tuple[str, str, int]]
    """(size 'WxH', mode, images) over the sampled headers, most frequent first."""
    sampled: int
    """Image headers read for `geometries`."""
    draws: list[ClassDraw] = field(default_factory=list)
    """dataset.subsample's draw per class, when the recipe has one."""
    n_external: int = 0
    """Images of the external test set (dataset.external_test)."""
    problems: list[str] = field(default_factory=list)
    """What would stop prepare_data after loading (a subsample target a class cannot reach, unreadable headers)."""


def inspect_dataset(cfg: DatasetConfig, max_headers: int = 200, seed: int = 0) -> Inspection:
    """Load the dataset's records as prepare_data would and summarise them; DataError as the loaders raise it."""
    record_set = load_records(cfg)
    records = record_set.records
    per_patient = Counter(r.patient_id for r in records)
    inspection = Inspection(class_counts(record_set), _skip_counts(record_set.skipped),
                            _patient_histogram(per_patient.values()), [], 0)
    if cfg.subsample is not None:
        try:
            draw = study_and_external(records, record_set.classes, cfg)
        except DataError as exc:
            inspection.problems.append(str(exc))
        else:
            inspection.draws = draw.draws
            inspection.n_external = len(draw.rest)
    if cfg.source != "phantom":
        _sample_geometries(inspection, [r.source for r in records], max_headers, seed)
    else:
        inspection.geometries = [(f"{cfg.phantom.native_size}x{cfg.phantom.native_size}", "phantom L",
                                  len(records))]
    return inspection


def class_counts(record_set: RecordSet) -> list[ClassCount]:
    """Images and patients of each class of a loaded dataset, in its class order."""
    images = Counter(r.label for r in record_set.records)
    patients: dict[str, set[str]] = defaultdict(set)
    for r in record_set.records:
        patients[r.label].add(r.patient_id)
    return [ClassCount(name, images[name], len(patients[name])) for name in record_set.classes]


def _skip_counts(skipped: list[tuple[str, str]]) -> list[SkipCount]:
    """Skipped rows and files grouped by rule, in SKIP_RULES order, with the first EXAMPLES of each."""
    by_rule: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for source, reason in skipped:
        by_rule[skip_rule(reason)].append((source, reason))
    return [SkipCount(rule, len(by_rule[rule]), by_rule[rule][:EXAMPLES]) for rule in SKIP_RULES if rule in by_rule]


def _patient_histogram(counts) -> dict[str, int]:
    """Patients by how many images they have."""
    bins = {"1": 0, "2": 0, "3-5": 0, "6-10": 0, ">10": 0}
    for n in counts:
        bins["1" if n == 1 else "2" if n == 2 else "3-5" if n <= 5 else "6-10" if n <= 10 else ">10"] += 1
    return bins


def _sample_geometries(inspection: Inspection, sources: list[str], max_headers: int, seed: int) -> None:
    """Size and mode of up to max_headers image headers drawn with the seed."""
    rng = np.random.default_rng(seed)
    picks = sorted(rng.choice(len(sources), size=min(max_headers, len(sources)), replace=False).tolist())
    seen: Counter = Counter()
    for i in picks:
        try:
            width, height, mode = image_geometry(sources[i])
        except DataError as exc:
            inspection.problems.append(str(exc))
            continue
        seen[(f"{width}x{height}", mode)] += 1
    inspection.geometries = [(size, mode, n) for (size, mode), n in seen.most_common()]
    inspection.sampled = len(picks)
