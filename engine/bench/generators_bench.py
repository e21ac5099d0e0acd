"""Speed of the GAN and DDPM generators with xaug's settings next to a naive reference, measured side by side.

xaug's settings: bf16 autocast and channels-last on a GPU (torch.compile optional), DPM-Solver++ with 25 steps for
DDPM sampling. The reference: the diffusers example-script defaults: fp32, no channels-last, no compile, DDPM
ancestral sampling with 250 steps (the paper's setting). Both run in the same process on the same random data,
so the ratio (xaug / reference) is what to read; absolute images/s depend on the machine.
Stable Diffusion rows come from `xaug.engine.bench.sd_bench.sd_rows` when that module is installed.
"""

from __future__ import annotations

from xaug.engine.bench.measure import PeakMemory, row, seconds_per_call


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def gan_bench_params(resolution: int, device: str) -> dict:
    """The GAN measured: StyleGAN2-ADA's 256-px width on a GPU, a narrow one on the CPU."""
    if device.startswith("cuda"):
        return dict(resolution=resolution, channels_base=16384, channels_max=512, z_dim=512, w_dim=512,
                    mapping_layers=2, batch_size=32, sample_batch_size=64)
    return dict(resolution=resolution, channels_base=1024, channels_max=64, z_dim=64, w_dim=64, mapping_layers=2,
                batch_size=8, sample_batch_size=16)


def ddpm_bench_params(resolution: int, device: str) -> dict:
    """The DDPM measured: the diffusers unconditional example's U-Net on a GPU, a small one on the CPU."""
    if device.startswith("cuda"):
        return dict(resolution=resolution, block_out_channels=(128, 128, 256, 256, 512, 512), layers_per_block=2,
                    attention=True, batch_size=16, sample_batch_size=16)
    return dict(resolution=resolution, block_out_channels=(32, 64, 64), layers_per_block=1, attention=False,
                norm_num_groups=16, batch_size=8, sample_batch_size=4)


def _reference_overrides() -> dict:
    return {"amp": False, "channels_last": False, "compile": False}


def gan_rows(device: str, resolution: int, steps: int = 10, compile: bool = False, memory: bool = False,
             params: dict | None = None) -> list[dict]:
    """Training images/s and sampling images/s of the GAN, xaug's settings vs fp32; with `memory`, the peak
    memory of each arm too. `params` overrides the measured size (default: `gan_bench_params`)."""
    import torch

    from xaug.engine.generators.gan import GanConfig, GanTrainer

    base = {**gan_bench_params(resolution, device), **(params or {})}
    rates, peaks = {}, {}
    for arm, overrides in (("xaug", {"compile": compile}), ("reference", _reference_overrides())):
        cfg = GanConfig(**{**base, **overrides})
        with PeakMemory(device) as peak:
            trainer = GanTrainer(cfg, 5, device, seed=0)
            real = torch.rand(cfg.batch_size, 1, resolution, resolution) * 2 - 1
            labels = torch.randint(0, 5, (cfg.batch_size,))
            per_step = seconds_per_call(lambda: trainer.train_step(real, labels, labels), steps, device)
            z = torch.randn(cfg.sample_batch_size, cfg.z_dim)
            s_labels = torch.randint(0, 5, (cfg.sample_batch_size,))
            per_batch = seconds_per_call(lambda: trainer.generate(z, s_labels), max(2, steps // 2), device)
        rates[arm], peaks[arm] = (cfg.batch_size / per_step, cfg.sample_batch_size / per_batch), peak.gib
        del trainer
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    rows = [row(f"gan train {resolution}px", "images/s", rates["xaug"][0], rates["reference"][0]),
            row(f"gan sample {resolution}px", "images/s", rates["xaug"][1], rates["reference"][1])]
    if memory:
        rows.append(row(f"gan train+sample {resolution}px", peak.metric, peaks["xaug"], peaks["reference"]))
    return rows


def ddpm_rows(device: str, resolution: int, steps: int = 10, compile: bool = False,
              reference_sample_steps: int = 250, memory: bool = False, params: dict | None = None) -> list[dict]:
    """Training images/s and sampling images/s of the DDPM: xaug (bf16, DPM-Solver++ 25) vs fp32 DDPM-250; with
    `memory`, the peak memory of each arm too. `params` overrides the measured size (default: ddpm_bench_params)."""
    import torch

    from xaug.engine.generators.ddpm import DdpmConfig, DdpmTrainer, denoise

    base = {**ddpm_bench_params(resolution, device), **(params or {})}
    arms = (("xaug", {"compile": compile, "sampler": "dpmsolver++", "sample_steps": 25}),
            ("reference", {**_reference_overrides(), "sampler": "ddpm", "sample_steps": reference_sample_steps}))
    rates, peaks = {}, {}
    for arm, overrides in arms:
        cfg = DdpmConfig(**{**base, **overrides})
        with PeakMemory(device) as peak:
            trainer = DdpmTrainer(cfg, 0, device, seed=0)
            clean = torch.rand(cfg.batch_size, 1, resolution, resolution) * 2 - 1
            per_step = seconds_per_call(lambda: trainer.train_step(clean, None), steps, device)
            unet = trainer.unet.eval()  # in the trainer's precision (channels-last on a GPU already)
            n = cfg.sample_batch_size

            def draw():
                denoise(unet, trainer.scheduler.config, cfg, None, n, torch.Generator().manual_seed(0), device, 0)

            per_batch = seconds_per_call(draw, 1, device, warmup=1)
        rates[arm], peaks[arm] = (cfg.batch_size / per_step, n / per_batch), peak.gib
        del trainer, unet
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    rows = [row(f"ddpm train {resolution}px", "images/s", rates["xaug"][0], rates["reference"][0]),
            row(f"ddpm sample {resolution}px (DPM-Solver++ 25 vs DDPM {reference_sample_steps})", "images/s",
                rates["xaug"][1], rates["reference"][1])]
    if memory:
        rows.append(row(f"ddpm train+sample {resolution}px", peak.metric, peaks["xaug"], peaks["reference"]))
    return rows


def sd_rows_if_available(device: str, resolution: int | None) -> list[dict]:
    """Rows of the Stable Diffusion generators' benchmark, or [] when that module is not installed."""
    try:
        from xaug.engine.bench.sd_bench import sd_rows
    except ImportError:
        return []
    return sd_rows(device, resolution)


def generator_rows(device: str = "auto", resolution: int = 64, steps: int = 10, compile: bool = False,
                   models: tuple[str, ...] = ("gan", "ddpm", "sd"), sd_resolution: int | None = None,
                   reference_sample_steps: int = 250) -> list[dict]:
    """All benchmark rows: for each generator, training and sampling images/s, xaug vs the naive reference."""
    import torch

    device = resolve_device(device)
    if not device.startswith("cuda"):
        torch.set_num_threads(min(torch.get_num_threads(), 2))
    rows: list[dict] = []
    if "gan" in models:
        rows += gan_rows(device, resolution, steps=steps, compile=compile)
    if "ddpm" in models:
        rows += ddpm_rows(device, resolution, steps=steps, compile=compile,
                          reference_sample_steps=reference_sample_steps)
    if "sd" in models:
        rows += sd_rows_if_available(device, sd_resolution)
    return rows


def device_name(device: str) -> str:
    """A human-readable name of the device measured."""
    import platform

    import torch

    device = resolve_device(device)
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
