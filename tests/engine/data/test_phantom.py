"""The procedural phantom: deterministic, the paper's class counts, chest-like grey images."""

from __future__ import annotations

import numpy as np
import pytest

from xaug.engine.data.phantom import phantom_class_counts, phantom_records, preview_grid, render_phantom, render_source
from xaug.store.errors import DataError
from xaug.engine.recipe.schema import CLASS_NAMES_PAPER, PhantomConfig


def test_class_counts_follow_the_paper_scaled():
    cfg = PhantomConfig(scale=0.25)
    assert phantom_class_counts(cfg) == {"healthy": 168, "bacterial": 25, "viral": 18, "fungal": 31, "covid19": 28}
    assert phantom_class_counts(PhantomConfig(scale=1.0))["viral"] == 74
    assert set(phantom_class_counts(PhantomConfig(scale=0.01)).values()) == {8}
    records = phantom_records(cfg)
    assert records.classes == list(CLASS_NAMES_PAPER)
    labels = [r.label for r in records.records]
    assert {name: labels.count(name) for name in CLASS_NAMES_PAPER} == phantom_class_counts(cfg)


def test_patients_have_between_min_and_max_images():
    records = phantom_records(PhantomConfig(scale=0.25, images_per_patient=(2, 4))).records
    per_patient = {}
    for r in records:
        per_patient[r.patient_id] = per_patient.get(r.patient_id, 0) + 1
    counts = np.array(list(per_patient.values()))
    assert counts.max() <= 4 and counts.max() >= 3
    assert (counts >= 2).mean() > 0.9  # only a class's last patient may be cut short
    assert len({r.image_id for r in records}) == len(records)
    assert all(r.patient_id not in r.image_id for r in records)


def test_rendering_is_deterministic_and_seeded():
    cfg = PhantomConfig(seed=3, native_size=64)
    a = render_phantom(cfg, "bacterial", 2, 1)
    assert np.array_equal(a, render_phantom(cfg, "bacterial", 2, 1))
    assert np.array_equal(a, render_source(cfg, "phantom:bacterial/0002/1"))
    assert not np.array_equal(a, render_phantom(PhantomConfig(seed=4, native_size=64), "bacterial", 2, 1))
    assert not np.array_equal(a, render_phantom(cfg, "bacterial", 2, 0))


def test_images_are_uint8_chest_like():
    cfg = PhantomConfig(native_size=128)
    img = render_phantom(cfg, "healthy", 0, 0)
    assert img.shape == (128, 128) and img.dtype == np.uint8
    assert img.min() < 40 and img.max() > 200  # air outside the body is dark, bone and heart bright
    # Lungs (left and right of the midline, mid-height) are darker than the mediastinum between them.
    lungs = np.concatenate([img[40:70, 25:45].ravel(), img[40:70, 83:103].ravel()]).mean()
    mediastinum = img[40:70, 58:70].mean()
    assert lungs + 30 < mediastinum


def test_same_patient_images_share_anatomy():
    cfg = PhantomConfig(native_size=64)
    first, second = (render_phantom(cfg, "viral", 5, i).astype(float) for i in range(2))
    other = render_phantom(cfg, "viral", 6, 0).astype(float)
    same = np.corrcoef(first.ravel(), second.ravel())[0, 1]
    different = np.corrcoef(first.ravel(), other.ravel())[0, 1]
    assert same > 0.85 and same > different


def test_findings_change_the_lungs_but_not_the_anatomy():
    cfg = PhantomConfig(native_size=64, difficulty=0.5)
    healthy = np.stack([render_phantom(cfg, "healthy", p, 0) for p in range(12)]).astype(float)
    fungal = np.stack([render_phantom(cfg, "fungal", p, 0) for p in range(12)]).astype(float)
    # Nodules add density: on average the lung fields are brighter with findings.
    lung = (slice(18, 40), slice(8, 26))
    assert fungal[:, lung[0], lung[1]].mean() > healthy[:, lung[0], lung[1]].mean()


def test_preview_grid_and_bad_addresses():
    grid = preview_grid(PhantomConfig(native_size=32), per_class=2)
    assert grid.shape == (5 * 32, 2 * 32)
    with pytest.raises(DataError, match="phantom:nope"):
        render_source(PhantomConfig(), "phantom:nope")
    with pytest.raises(DataError, match="unknown class"):
        phantom_records(PhantomConfig(), ["healthy", "flu"])
