"""Limited-data subsampling: patient-level, seeded, hits target counts when the patients allow it, says clearly when
a class is too small; the rest can become an external test set that no fold contains."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest

from conftest import write_png
from xaug.engine.data.prepared import load_prepared, prepare_dataset
from xaug.engine.data.records import ImageRecord
from xaug.engine.data.subsample import draw_subsample
from xaug.store.errors import DataError
from xaug.engine.recipe.schema import CsvConfig, DatasetConfig, SplitsConfig, SubsampleConfig

CLASSES = ["bacterial", "healthy", "viral"]


def records(images_per_patient: dict[str, list[int]]) -> list[ImageRecord]:
    """Records of patients with the given numbers of images, per class."""
    out = []
    for name, sizes in images_per_patient.items():
        for p, n in enumerate(sizes):
            out += [ImageRecord(f"{name}/{len(out):05d}", f"{name}-{p}", name, f"{name}-{p}-{i}.png")
                    for i in range(n)]
    return out


MIXED = {"bacterial": [3, 1, 2, 1, 1, 4, 1, 2, 1, 1], "healthy": [2] * 20 + [1] * 10, "viral": [1, 2, 3, 1, 1, 2]}


def test_draw_is_patient_level_and_hits_targets():
    recs = records(MIXED)
    targets = {"bacterial": 9, "healthy": 31, "viral": 5}
    for seed in range(5):
        draw = draw_subsample(recs, CLASSES, SubsampleConfig(per_class=targets, seed=seed))
        chosen = {recs[i].patient_id for i in draw.selected}
        rest = {recs[i].patient_id for i in draw.rest}
        assert not chosen & rest  # no patient on both sides
        assert len(draw.selected) + len(draw.rest) == len(recs)
        assert Counter(recs[i].label for i in draw.selected) == targets
        assert {d.class_name: d.selected_patients for d in draw.draws} == {
            c: len({recs[i].patient_id for i in draw.selected if recs[i].label == c}) for c in CLASSES}


def test_draw_is_seeded():
    recs = records(MIXED)
    cfg = SubsampleConfig(per_class={"healthy": 20, "bacterial": 8, "viral": 4}, seed=3)
    assert np.array_equal(draw_subsample(recs, CLASSES, cfg).selected, draw_subsample(recs, CLASSES, cfg).selected)
    other = draw_subsample(recs, CLASSES, cfg.model_copy(update={"seed": 4})).selected
    assert not np.array_equal(draw_subsample(recs, CLASSES, cfg).selected, other)


def test_a_gap_left_by_the_greedy_draw_is_filled_exactly():
    recs = records({"bacterial": [2, 2, 3], "healthy": [4, 4, 1, 3], "viral": [1]})
    targets = {"bacterial": 5, "healthy": 7, "viral": 1}
    for seed in range(8):  # whichever order the seed draws, some set of whole patients hits each target
        draw = draw_subsample(recs, CLASSES, SubsampleConfig(per_class=targets, seed=seed))
        assert Counter(recs[i].label for i in draw.selected) == targets
        assert not {recs[i].patient_id for i in draw.selected} & {recs[i].patient_id for i in draw.rest}


def test_target_that_patients_cannot_hit_stops_just_below():
    recs = records({"bacterial": [2] * 5, "healthy": [1] * 4, "viral": [3] * 3})
    draw = draw_subsample(recs, CLASSES, SubsampleConfig(per_class={"bacterial": 5, "viral": 4}))
    got = {d.class_name: (d.target, d.selected_images) for d in draw.draws}
    assert got == {"bacterial": (5, 4), "healthy": (4, 4), "viral": (4, 3)}  # healthy is not listed: kept whole


def test_too_few_images_names_the_class_and_counts():
    recs = records(MIXED)
    with pytest.raises(DataError, match=r"class 'viral' has 10 images from 6 patients, fewer than its target 74"):
        draw_subsample(recs, CLASSES, SubsampleConfig(per_class={"viral": 74}))
    with pytest.raises(DataError, match=r"names \['covid'\], which are not classes"):
        draw_subsample(recs, CLASSES, SubsampleConfig(per_class={"covid": 3}))


def test_fraction_per_class():
    recs = records({"bacterial": [1] * 40, "healthy": [1] * 100, "viral": [2] * 10})
    draw = draw_subsample(recs, CLASSES, SubsampleConfig(fraction=0.25))
    assert {d.class_name: d.selected_images for d in draw.draws} == {"bacterial": 10, "healthy": 25, "viral": 4}


def test_external_test_set_is_the_rest_or_at_most_a_cap_per_class():
    from xaug.engine.data.subsample import study_and_external
    from xaug.engine.recipe.schema import DatasetConfig

    recs = records({"bacterial": [1] * 40, "healthy": [2] * 30 + [1] * 10, "viral": [1] * 8})
    subsample = SubsampleConfig(per_class={"bacterial": 10, "healthy": 20, "viral": 5})
    whole = study_and_external(recs, CLASSES, DatasetConfig(subsample=subsample))
    assert len(whole.rest) == 0 and len(whole.selected) == 35
    rest = study_and_external(recs, CLASSES, DatasetConfig(subsample=subsample, external_test=True))
    assert np.array_equal(rest.selected, whole.selected) and len(rest.rest) == len(recs) - 35
    capped = study_and_external(recs, CLASSES, DatasetConfig(subsample=subsample, external_test=True,
                                                             external_test_per_class=12))
    assert np.array_equal(capped.selected, whole.selected) and set(capped.rest) <= set(rest.rest)
    assert Counter(recs[i].label for i in capped.rest) == {"bacterial": 12, "healthy": 12, "viral": 3}
    cap_patients = {recs[i].patient_id for i in capped.rest}
    assert not cap_patients & {recs[i].patient_id for i in capped.selected}
    assert all(recs[i].patient_id not in cap_patients for i in set(rest.rest) - set(capped.rest))  # whole patients
    with pytest.raises(DataError, match="the subsample drew every image, so the external test set would be empty"):
        study_and_external(recs, CLASSES, DatasetConfig(subsample=SubsampleConfig(fraction=0.999),
                                                        external_test=True))


def test_prepared_subsample_with_external_test_set(tmp_path):
    rows = []
    for name, n_patients in (("healthy", 14), ("viral", 10)):
        for p in range(n_patients):
            for i in range(1 + p % 2):
                path = f"{name}_{p}_{i}.png"
                write_png(tmp_path / "img" / path, 60, seed=len(rows))
                rows.append({"file": path, "label": name, "patient_id": f"{name}{p}"})
    table = tmp_path / "meta.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "label", "patient_id"])
        writer.writeheader()
        writer.writerows(rows)
    dataset = DatasetConfig(source="csv", path=str(table), image_size=16, external_test=True,
                            csv=CsvConfig(path_column="file", image_root="img"),
                            subsample=SubsampleConfig(per_class={"healthy": 9, "viral": 6}, seed=1))
    report = prepare_dataset(dataset, SplitsConfig(folds=3), tmp_path / "out")
    assert report.class_counts == {"healthy": 9, "viral": 6}
    assert report.n_external == len(rows) - 15
    data = load_prepared(tmp_path / "out")
    fold_images = set(np.concatenate([data.folds[0].train, data.folds[0].val, data.folds[0].test]).tolist())
    assert fold_images == set(range(15)) and not fold_images & set(data.external.tolist())
    external_patients = {data.patients[i] for i in data.external}
    assert not external_patients & {data.patients[i] for i in fold_images}
    images, labels = data.split(2, "external")
    assert images.shape == (len(rows) - 15, 16, 16) and np.array_equal(labels, data.labels[data.external])
    assert [d["selected_images"] for d in report.subsample] == [9, 6]
