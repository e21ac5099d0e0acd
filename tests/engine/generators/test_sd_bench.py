"""The SD rows of the generator benchmark: xaug's settings vs the diffusers example defaults, on the tiny SD."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_sd import tiny_sd_dir

from xaug.engine.bench.sd_bench import sd_rows


def test_sd_rows_report_train_and_sampling_ratios(tmp_path_factory):
    base = tiny_sd_dir(str(tmp_path_factory.getbasetemp()))
    rows = sd_rows("cpu", 32, steps=3, methods=("sd_finetune",), n_images=1, base_model=base)
    assert [(r["name"], r["metric"]) for r in rows] == [("sd_finetune train 32px", "it/s"),
                                                        ("sd sampling 32px", "images/s")]
    for row in rows:
        assert set(row) == {"name", "metric", "xaug", "reference", "ratio"}
        assert row["xaug"] > 0 and row["reference"] > 0
        assert math.isclose(row["ratio"], row["xaug"] / row["reference"], rel_tol=0.01)


@pytest.mark.gpu
@pytest.mark.slow
def test_sd_rows_on_gpu_at_512():
    """SD v1.4-sized random model at 512 px: xaug's settings must use less memory than the example defaults."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    rows = sd_rows("cuda", 512, steps=6, n_images=4)
    for row in rows:
        print(row)
    memory = [r for r in rows if r["metric"] == "peak GiB"]
    assert len(memory) == 3 and all(r["ratio"] < 1 for r in memory)
