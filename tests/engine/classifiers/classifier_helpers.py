"""Shared helpers of the classifier tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

CLASSES = ["healthy", "bacterial", "viral"]
SIZE = 32


def make_images(n: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """n noisy grey images whose class (0..2) is a bright horizontal band at a class-specific height."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % len(CLASSES)
    images = rng.integers(0, 70, size=(n, size, size)).astype(np.uint8)
    for i, c in enumerate(labels):
        top = 4 + c * (size // 4)
        images[i, top:top + size // 6, :] += 150
    return images, labels


@dataclass
class FakePrepared:
    """Stands in for xaug.engine.data.prepared.PreparedData: fixed train/val/test arrays for fold 0."""

    classes: list[str]
    splits: dict

    def split(self, fold: int, split: str, repeat: int = 0):
        assert fold == 0 and repeat == 0, "the fake holds fold 0 of one repetition only"
        return self.splits[split]


def insert_job(db, key: str, kind: str, config: dict, deps: tuple[str, ...] = ()) -> dict:
    """Insert a job row (tests only: store/jobs.py has no insert helper) and return it as a JobContext dep."""
    db["jobs"].insert({"key": key, "kind": kind, "label": f"{kind} test", "config_json": json.dumps(config),
                       "created_at": "2026-01-01T00:00:00"})
    for dep in deps:
        db["job_deps"].insert({"job_key": key, "dep_key": dep})
    return {"key": key, "kind": kind, "config": config}
