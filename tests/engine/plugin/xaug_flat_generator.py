"""A sixth generator in a package of its own (one file): what a user writes to test a model xaug does not ship.

Its package declares it as an entry point, `flat = "xaug_flat_generator"` in the group `xaug.generators`; xaug is
not edited. It "trains" by measuring each class's mean brightness and samples flat images of that brightness plus
seeded noise of amplitude `params.noise`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from xaug.engine.generators.base import TrainOutcome
from xaug.engine.generators.registry import register_generator


class FlatParams(BaseModel):
    """Settings of the flat generator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    noise: int = Field(0, ge=0, le=50)
    size: int = Field(16, ge=8)


@register_generator("flat", FlatParams)
class FlatGenerator:
    """Per-class mean brightness, sampled as flat images with noise."""

    def train(self, params, per_class, data, work_dir: Path, hooks, device, seed) -> TrainOutcome:
        means = {name: float(data.of_class(name).mean()) for name in data.classes}
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "flat.json").write_text(json.dumps({"means": means, "params": params.model_dump()}))
        hooks.progress(1, 1, {"loss": 0.0})
        return TrainOutcome(checkpoint=work_dir, finished=True, step=1)

    def sample(self, checkpoint: Path, class_name: str, n: int, seed: int, device: str) -> np.ndarray:
        saved = json.loads((Path(checkpoint) / "flat.json").read_text())
        size, noise = saved["params"]["size"], saved["params"]["noise"]
        rng = np.random.default_rng(seed)
        images = saved["means"][class_name] + rng.integers(-noise, noise + 1, (n, size, size))
        return np.clip(images, 0, 255).astype(np.uint8)
