"""`xaug bench gpu --smoke`: the full-size GPU benchmark's code at tiny sizes on the CPU, through the CLI."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from xaug.engine.cli import load_commands

# Every row of a smoke run, in order: (name, metric). A GPU run names the same rows at full size, with peak GiB
# instead of peak RSS GiB, plus GPU utilisation and peak reserved memory rows.
SMOKE_ROWS = [
    ("sd_finetune train 32px", "it/s"), ("sd_finetune train 32px", "peak RSS GiB"),
    ("sd_finetune train 32px without gradient checkpointing", "it/s"), ("sd sampling 32px", "images/s"),
    *[(f"{model} 32px b8 {what}", metric) for model in ("test_resnet", "test_convnext")
      for what, metric in (("train", "it/s"), ("train", "peak RSS GiB"), ("inference", "images/s"),
                           ("train: waiting for batches", "% of step"), ("train +fused Adam", "it/s"))],
    ("test_resnet 32px runs (40 images x 1 epochs): 2 jobs per CPU vs 1", "runs/hour"),
    ("ddpm train 16px", "images/s"), ("ddpm sample 16px (DPM-Solver++ 25 vs DDPM 50)", "images/s"),
    ("ddpm train+sample 16px", "peak RSS GiB"),
    ("gan train 16px", "images/s"), ("gan sample 16px", "images/s"), ("gan train+sample 16px", "peak RSS GiB"),
]


def test_smoke_run_prints_and_writes_every_row_with_positive_numbers(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(load_commands(), ["bench", "gpu", "--smoke", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["device"].startswith("CPU")
    assert [(r["name"], r["metric"]) for r in report["rows"]] == SMOKE_ROWS
    for row in report["rows"]:
        assert row["xaug"] > 0 and row["reference"] > 0, row
        assert math.isclose(row["ratio"], row["xaug"] / row["reference"], rel_tol=0.02), row
    assert list(report["seconds"]) == ["sd", "classifier", "packing", "ddpm", "gan"] and report["skipped"] == []
    assert report["failed"] == {}
    for name, _ in SMOKE_ROWS:
        assert name[:40] in result.output  # the table names every row (rich may wrap long names)


def test_without_a_gpu_the_full_run_says_to_use_smoke():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    result = CliRunner().invoke(load_commands(), ["bench", "gpu", "--section", "gan"])
    assert result.exit_code != 0 and "--smoke" in str(result.exception)


def test_an_unknown_section_is_named():
    result = CliRunner().invoke(load_commands(), ["bench", "gpu", "--smoke", "--section", "vae"])
    assert result.exit_code != 0 and "unknown section(s) vae" in str(result.exception)


@pytest.mark.gpu
@pytest.mark.slow
def test_full_run_on_a_gpu(tmp_path):
    """The full table on a GPU (about 8 minutes): every row positive; xaug uses less memory fine-tuning SD."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from xaug.engine.bench.gpu_bench import gpu_bench

    result = gpu_bench(max_minutes=9)
    assert result.failed == {} and result.skipped == []
    assert result.rows and all(r["xaug"] > 0 and r["reference"] > 0 for r in result.rows)
    memory = next(r for r in result.rows if r["name"].startswith("sd_finetune") and r["metric"] == "peak GiB")
    assert memory["ratio"] < 1


def test_a_failing_section_is_reported_and_the_others_still_run(monkeypatch):
    from xaug.engine.bench import gpu_bench as bench

    def section(name, size, device, compile, budget_s):
        if name == "gan":
            raise RuntimeError("CUDA out of memory")
        return [{"name": name, "metric": "it/s", "xaug": 2.0, "reference": 1.0, "ratio": 2.0}]

    monkeypatch.setattr(bench, "_run_section", section)
    saved = []
    result = bench.gpu_bench(smoke=True, sections=("gan", "ddpm", "packing"), on_section=lambda r: saved.append(
        list(r.seconds)))
    assert result.failed == {"gan": "RuntimeError: CUDA out of memory"}
    assert [r["name"] for r in result.rows] == ["packing", "ddpm"]
    assert list(result.seconds) == ["packing", "ddpm", "gan"]
    assert saved == [["packing"], ["packing", "ddpm"], ["packing", "ddpm", "gan"]]  # saved after every section
