"""Benchmark of the Stable Diffusion generators: xaug's settings vs the diffusers example scripts' defaults.

Both arms run xaug's training loop on the same random-weight Stable Diffusion; only the settings differ:
xaug (mixed precision on GPU, gradient checkpointing, 8-bit Adam when available, cached latents, Min-SNR)
vs reference (fp32, no gradient checkpointing, AdamW, VAE every step, plain MSE: the example scripts' defaults).
Sampling compares DPM-Solver++ 25 steps (half precision on GPU) with PNDM 50 steps in fp32.
`write_random_sd` also builds the tiny random model the tests use (no download: random weights, tiny tokenizer).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from xaug.engine.bench.measure import PeakMemory, row, sync

# Words of the paper's prompts: the tiny tokenizer merges them into whole-word tokens.
PROMPT_WORDS = ("an x-ray image of the lung with viral bacterial covid-19 fungal pneumonia healthy patient no "
                "signs sks").split()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def write_tiny_tokenizer(folder: Path, words=PROMPT_WORDS) -> Path:
    """A byte-level CLIP tokenizer (vocab.json + merges.txt): every byte, plus merges for `words`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(token, len(vocab))
    merges: list[str] = []
    for word in sorted(set(w.lower() for w in words)):
        for piece in _split_word(word):
            pieces = list(piece[:-1]) + [piece[-1] + "</w>"]
            current = pieces[0]
            for nxt in pieces[1:]:
                merge = f"{current} {nxt}"
                if merge not in merges:
                    merges.append(merge)
                current += nxt
                vocab.setdefault(current, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


def _split_word(word: str) -> list[str]:
    """Pieces as CLIP's pre-tokenizer splits them: letter runs, single digits, punctuation runs."""
    import re

    return re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", word)


def write_random_sd(folder: Path, arch: str = "tiny", seed: int = 0) -> Path:
    """Save a random-weight StableDiffusionPipeline as a local diffusers folder.

    arch 'tiny': 32 px images (UNet (32, 64), 16x16 latents) for tests; 'sd14' or 'sd15': Stable Diffusion
    v1.4's architecture (also v1.5's: 860M-parameter UNet, the VAE, CLIP ViT-L/14's text encoder with the tiny
    tokenizer's vocabulary) with random weights, for realistic speed and memory at 512 px.
    """
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="xaug-tokenizer-") as tok_dir:
        tokenizer = CLIPTokenizer.from_pretrained(write_tiny_tokenizer(Path(tok_dir)), model_max_length=77)
    torch.manual_seed(seed)
    if arch == "tiny":
        unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4,
                                    out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                    attention_head_dim=8, norm_num_groups=8)
        vae = AutoencoderKL(block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                            layers_per_block=1, norm_num_groups=8, sample_size=32)
        text = CLIPTextConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                              max_position_embeddings=77, vocab_size=len(tokenizer), bos_token_id=0, eos_token_id=1,
                              pad_token_id=1, projection_dim=32)
    elif arch in ("sd14", "sd15"):  # v1.5 is v1.4's architecture, trained further
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2,
                            sample_size=512)
        text = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                              max_position_embeddings=77, vocab_size=len(tokenizer), bos_token_id=0, eos_token_id=1,
                              pad_token_id=1, projection_dim=768)
    else:
        raise ValueError(f"unknown arch '{arch}': choose tiny, sd14 or sd15")
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=CLIPTextModel(text), tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


class _TimingHooks:
    """Train hooks that record when each step finished."""

    def __init__(self):
        self.times: list[float] = []

    def progress(self, step, total, losses):
        self.times.append(time.perf_counter())

    def grid(self, step, images, class_names):
        pass

    def should_stop(self):
        return False


def _rate(times: list[float], warmup: int) -> float:
    """Steps per second after `warmup` steps."""
    t = times[warmup:]
    return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else float("nan")


def _train_rate(model: str, params: dict, data, work: Path, device: str, warmup: int) -> tuple[float, PeakMemory, Path]:
    """(it/s, peak memory, checkpoint) of one training run."""
    from xaug.engine.generators.registry import get_generator

    entry = get_generator(model)
    hooks = _TimingHooks()
    with PeakMemory(device) as peak:
        outcome = entry.factory().train(entry.config_class.model_validate(params), False, data, work, hooks, device,
                                        0)
    return _rate(hooks.times, warmup), peak, outcome.checkpoint


def sd_rows(device: str, resolution: int | None = None, arch: str | None = None, steps: int = 8,
            methods: tuple[str, ...] = ("sd_finetune", "dreambooth", "lora"), n_images: int = 4,
            base_model: Path | None = None, memory: bool = False,
            candidates: dict[str, dict] | None = None) -> list[dict]:
    """Fine-tune it/s (and peak memory on GPU, or everywhere with `memory`) and sampling images/s, xaug's settings
    vs the example defaults; each of `candidates` (name -> overrides of xaug's settings) adds an it/s row against
    the same reference.

    Defaults: on CUDA the SD v1.4 architecture at 512 px; on the CPU the tiny model at 32 px; a random-weight
    model is built in a temporary folder unless `base_model` (a diffusers folder) is given.
    """
    from xaug.engine.generators.base import TrainImages

    cuda = device.startswith("cuda")
    arch = arch or ("sd14" if cuda else "tiny")
    resolution = resolution or (512 if cuda else 32)
    rng = np.random.default_rng(0)
    data = TrainImages(images=rng.integers(0, 256, (8, resolution, resolution), dtype=np.uint8),
                       labels=np.array([0, 1] * 4), classes=["healthy", "viral"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="xaug-sd-bench-") as tmp:
        base = base_model or write_random_sd(Path(tmp) / "base", arch=arch)
        common = {"base_model": str(base), "resolution": resolution, "steps": steps, "batch_size": 1,
                  "checkpoint_every": 10**6, "grid_every": 10**6, "grid_per_class": 1, "grid_inference_steps": 1,
                  "save_precision": "fp32"}
        reference = {"mixed_precision": "no", "gradient_checkpointing": False, "use_8bit_adam": False,
                     "cache_latents": False, "snr_gamma": None}
        checkpoint = None
        warmup = min(2, max(0, steps - 2))  # steps timed after the first ones (allocation, kernel selection)
        for model in methods:
            mine, mem_x, ckpt = _train_rate(model, common, data, Path(tmp) / f"{model}-x", device, warmup)
            ref, mem_r, _ = _train_rate(model, {**common, **reference}, data, Path(tmp) / f"{model}-r", device, warmup)
            rows.append(row(f"{model} train {resolution}px", "it/s", mine, ref))
            if cuda or memory:
                rows.append(row(f"{model} train {resolution}px", mem_x.metric, mem_x.gib, mem_r.gib))
            for name, overrides in (candidates or {}).items():
                rate, _, _ = _train_rate(model, {**common, **overrides}, data, Path(tmp) / f"{model}-{name}", device,
                                         warmup)
                rows.append(row(f"{model} train {resolution}px {name}", "it/s", rate, ref))
            if model == "sd_finetune":
                checkpoint = ckpt
        if checkpoint is not None:
            rows += _sampling_rows(checkpoint, device, resolution, n_images)
    return rows


def _sampling_rows(checkpoint: Path, device: str, resolution: int, n: int) -> list[dict]:
    """Images/s of DPM-Solver++ 25 (mixed precision) vs PNDM 50 (fp32) from the fine-tuned checkpoint."""
    from xaug.engine.generators import sd_sampling
    from xaug.engine.generators.sd_finetune import SdFinetune

    gen = SdFinetune()
    rates = []
    for overrides in ({"scheduler": "dpmsolver++", "inference_steps": 25, "mixed_precision": "auto"},
                      {"scheduler": "pndm", "inference_steps": 50, "mixed_precision": "no"}):
        sd_sampling._PIPE_CACHE.clear()
        gen.sample(checkpoint, "healthy", 1, 0, device, batch_size=n, **{**overrides, "inference_steps": 2})  # warm-up
        sync(device)
        start = time.perf_counter()
        gen.sample(checkpoint, "healthy", n, 0, device, batch_size=n, **overrides)
        sync(device)
        rates.append(n / (time.perf_counter() - start))
    sd_sampling._PIPE_CACHE.clear()
    return [row(f"sd sampling {resolution}px", "images/s", rates[0], rates[1])]
