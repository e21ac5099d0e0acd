"""Fixtures for classifier tests: tiny separable grey images, a tiny timm spec, and job contexts on a temp store."""

from __future__ import annotations

import pytest
from classifier_helpers import CLASSES, FakePrepared, insert_job, make_images

from xaug.engine.recipe.schema import ClassifierSpec


@pytest.fixture
def prepared() -> FakePrepared:
    """Train 24 / val 9 / test 12 images of three classes."""
    return FakePrepared(list(CLASSES), {"train": make_images(24, 1), "val": make_images(9, 2),
                                        "test": make_images(12, 3)})


@pytest.fixture
def tiny_spec() -> ClassifierSpec:
    """A ~100k-parameter timm EfficientNet for 1-channel input, 2 epochs of batch 8."""
    return ClassifierSpec(model="test_efficientnet", epochs=2, batch_size=8, lr=3e-3)


@pytest.fixture
def make_ctx(store_db, tmp_path, monkeypatch, prepared):
    """Build a JobContext for a kind with its dependency rows; the prepare_data output is the fake above."""
    from xaug.engine.classifiers import datasets
    from xaug.engine.jobs.context import JobContext

    monkeypatch.setattr(datasets, "_prepared", lambda ctx: prepared)
    db_path = tmp_path / "xaug.db"
    data_dep = insert_job(store_db, "p" * 64, "prepare_data", {"dataset": {}, "splits": {}})

    def build(kind: str, key: str, config: dict, deps: list[dict] = (), **kwargs) -> JobContext:
        all_deps = [data_dep, *deps]
        insert_job(store_db, key, kind, config, tuple(d["key"] for d in all_deps))
        return JobContext(key=key, kind=kind, config=config, db=store_db, db_path=db_path,
                          deps={d["key"]: d for d in all_deps}, **kwargs)

    build.insert_job = lambda *a, **k: insert_job(store_db, *a, **k)
    return build
