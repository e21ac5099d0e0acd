"""`xaug bench gpu`: every model of a study at full size with random weights, xaug's settings against the diffusers
example-script settings in one run, plus classifier runs per hour with 1 vs k jobs on one GPU.

Sections (each with a time budget, so the whole run fits in about 8 minutes on one H100/H200; a section whose
budget no longer fits in `max_minutes` is skipped and named):
- sd: Stable Diffusion 1.5's UNet + VAE + CLIP text encoder (configs written in code, random weights) fine-tuned at
  512 px through xaug's own training loop (`sd_bench.sd_rows`), and sampled;
- classifier: resnet50 and convnext_small at 224 px, batch 8 (timm, pretrained=False; `classifier_bench`);
- packing: classifier runs per hour with k jobs side by side on the GPU vs one (`packing_bench`);
- ddpm: the diffusers example U-Net at 256 px; gan: the StyleGAN2-ADA-style GAN at 256 px (`generators_bench`).
`smoke=True` runs the same code at tiny sizes on the CPU (the test suite's format check).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from xaug.engine.errors import BenchError

log = logging.getLogger("xaug.bench")


@dataclass(frozen=True)
class Section:
    """One part of the benchmark: what it measures at full size and at smoke size, and its time budget."""

    name: str
    budget_s: float
    """Seconds it is expected to take on one H100/H200 (the classifier section spends it; the others fit in it)."""
    full: dict = field(default_factory=dict)
    smoke: dict = field(default_factory=dict)


# In order of what the issue asks first (SD fine-tune >= 1.3x, a busy GPU for classifiers, jobs per GPU), so that a
# run short of time skips the GAN and the DDPM.
SECTIONS = (
    Section("sd", 200, full=dict(resolution=512, arch="sd15", steps=8, n_images=4),
            smoke=dict(resolution=32, arch="tiny", steps=3, n_images=1)),
    Section("classifier", 80, full=dict(models=(("resnet50", 224), ("convnext_small", 224)), n_images=256),
            smoke=dict(models=(("test_resnet", 32), ("test_convnext", 32)), n_images=32)),
    Section("packing", 80, full=dict(model="resnet50", image_size=224, n_images=960, epochs=2, k=4),
            smoke=dict(model="test_resnet", image_size=32, n_images=40, epochs=1, k=2)),
    Section("ddpm", 60, full=dict(resolution=256, steps=10, reference_sample_steps=250),
            smoke=dict(resolution=16, steps=1, reference_sample_steps=50,
                       params=dict(block_out_channels=(16, 32), norm_num_groups=8, batch_size=2,
                                   sample_batch_size=1))),
    Section("gan", 50, full=dict(resolution=256, steps=10),
            smoke=dict(resolution=16, steps=1, params=dict(channels_base=128, channels_max=16, z_dim=16, w_dim=16,
                                                           batch_size=2, sample_batch_size=2))),
)
SECTION_NAMES = tuple(s.name for s in SECTIONS)


@dataclass
class GpuBenchResult:
    """Rows of the table, the seconds each section took, the sections skipped for time and those that failed."""

    device: str
    rows: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Section -> its error: one failing section (out of memory, a compile error) does not lose the others."""


def gpu_bench(smoke: bool = False, sections: tuple[str, ...] = SECTION_NAMES, jobs_per_gpu: int | None = None,
              compile: bool = False, max_minutes: float = 8.0,
              on_section: Callable[[GpuBenchResult], None] | None = None) -> GpuBenchResult:
    """Run the chosen sections: on the GPU at full size, or with `smoke` on the CPU at tiny size. `on_section` is
    called with the result so far after each section (the CLI saves it, so a run killed later keeps it)."""
    import torch

    unknown = sorted(set(sections) - set(SECTION_NAMES))
    if unknown:
        raise BenchError(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTION_NAMES)}")
    if not smoke and not torch.cuda.is_available():
        raise BenchError("`xaug bench gpu` needs a CUDA GPU and none is visible; `--smoke` runs the same code at "
                         "tiny sizes on the CPU (a format check, not a measurement of a GPU)")
    device = "cpu" if smoke else "cuda"
    if smoke:
        torch.set_num_threads(min(torch.get_num_threads(), 2))
    result = GpuBenchResult(device=device)
    began = time.monotonic()
    for section in SECTIONS:
        if section.name not in sections:
            continue
        if not smoke and time.monotonic() - began + section.budget_s > max_minutes * 60:
            result.skipped.append(section.name)
            continue
        size = dict(section.smoke if smoke else section.full)
        if section.name == "packing" and jobs_per_gpu:
            size["k"] = jobs_per_gpu
        start = time.monotonic()
        try:
            result.rows += _run_section(section.name, size, device, compile, section.budget_s)
        except Exception as exc:  # noqa: BLE001 - reported with the table; the remaining sections still run
            result.failed[section.name] = f"{type(exc).__name__}: {exc}"
            log.exception("section %s failed", section.name)  # the traceback, for the one run a GPU session gets
            if device == "cuda":
                torch.cuda.empty_cache()
        result.seconds[section.name] = round(time.monotonic() - start, 1)
        if on_section is not None:
            on_section(result)
    return result


def _run_section(name: str, size: dict, device: str, compile: bool, budget_s: float) -> list[dict]:
    """The rows of one section."""
    if name == "sd":
        from diffusers.utils import logging as diffusers_logging

        from xaug.engine.bench.sd_bench import sd_rows

        diffusers_logging.disable_progress_bar()  # one bar per pipeline load would break up the table's output

        # Gradient checkpointing is xaug's default (it halves memory at ~25% of the speed): is it what costs the
        # most speed on a GPU with memory to spare?
        return sd_rows(device, size["resolution"], arch=size["arch"], steps=size["steps"], methods=("sd_finetune",),
                       n_images=size["n_images"], memory=True,
                       candidates={"without gradient checkpointing": {"gradient_checkpointing": False}})
    if name == "gan":
        from xaug.engine.bench.generators_bench import gan_rows

        return gan_rows(device, size["resolution"], steps=size["steps"], compile=compile, memory=True,
                        params=size.get("params"))
    if name == "ddpm":
        from xaug.engine.bench.generators_bench import ddpm_rows

        return ddpm_rows(device, size["resolution"], steps=size["steps"], compile=compile, memory=True,
                         reference_sample_steps=size["reference_sample_steps"], params=size.get("params"))
    if name == "classifier":
        from xaug.engine.bench.classifier_bench import classifier_rows

        per_model = budget_s / len(size["models"]) * 0.7  # the rest: model builds and inference
        return [r for model, px in size["models"]
                for r in classifier_rows(model, px, device, per_model if device == "cuda" else 1.0,
                                         n_images=size["n_images"], compile=compile)]
    from xaug.engine.bench.packing_bench import runs_per_hour

    return runs_per_hour(size["model"], size["image_size"], device, size["k"], size["n_images"], size["epochs"])

