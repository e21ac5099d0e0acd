"""Sampling Stable Diffusion: schedulers by name, pipelines (around the weights being trained, or a trained unit
loaded from its folder), seeded batches of grey images, and the manifest that says what a trained folder holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from xaug.engine.errors import WeightsError
from xaug.engine.generators.sd_method import SdMethod
from xaug.engine.generators.sd_model import Parts, resolve_base_model
from xaug.engine.generators.sd_params import SCHEDULERS, SdParams
from xaug.engine.precision import Precision, autocast_dtype

MANIFEST = "manifest.json"


def make_scheduler(name: str, config):
    """A sampling scheduler by name, configured like the base model's scheduler."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, PNDMScheduler

    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    if name == "pndm":
        return PNDMScheduler.from_config(config, skip_prk_steps=True)
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config)
    raise ValueError(f"unknown scheduler '{name}'; choose one of {', '.join(SCHEDULERS)}")


def to_grey_uint8(images: np.ndarray) -> np.ndarray:
    """Pipeline output float RGB [n,H,W,3] in [0,1] -> grey uint8 [n,H,W] (ITU-R 601 luma)."""
    rgb = np.asarray(images, dtype=np.float32)
    grey = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114 if rgb.ndim == 4 else rgb
    return np.clip(np.rint(grey * 255.0), 0, 255).astype(np.uint8)


def run_pipeline(pipe, prompt: str, n: int, seed: int, steps: int, guidance: float, negative: str, batch: int,
                 resolution: int, dtype=None, **call_kwargs) -> np.ndarray:
    """n grey uint8 images from a pipeline; image i uses torch.Generator seeded seed + i (batch-independent).
    `call_kwargs` go to the pipeline call (e.g. LoRA's cross_attention_kwargs)."""
    import torch

    device = str(pipe.device)
    out = []
    for start in range(0, n, batch):
        count = min(batch, n - start)
        gens = [torch.Generator().manual_seed(seed + start + j) for j in range(count)]
        with torch.no_grad(), Precision(device, dtype).autocast():
            result = pipe([prompt] * count, negative_prompt=[negative] * count if negative else None,
                          num_inference_steps=steps, guidance_scale=guidance, generator=gens, height=resolution,
                          width=resolution, output_type="np", **call_kwargs)
        out.append(to_grey_uint8(result.images))
    return np.concatenate(out) if out else np.zeros((0, resolution, resolution), np.uint8)


def pipeline_from_parts(parts: Parts):
    """A DPM-Solver++ StableDiffusionPipeline around the weights being trained (no safety checker)."""
    from diffusers import StableDiffusionPipeline

    scheduler = make_scheduler("dpmsolver++", parts.noise_scheduler.config)
    pipe = StableDiffusionPipeline(vae=parts.vae, text_encoder=parts.text_encoder, tokenizer=parts.tokenizer,
                                   unet=parts.unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


_PIPE_CACHE: dict[tuple, Any] = {}


def load_pipeline(method: SdMethod, checkpoint: Path, unit: str, device: str, mixed_precision: str = "auto"):
    """A StableDiffusionPipeline with a unit's trained weights (the last one is kept cached), and its dtype."""
    import torch
    from diffusers import StableDiffusionPipeline

    key = (str(Path(checkpoint).resolve()), unit, device, mixed_precision)
    if key in _PIPE_CACHE:
        return _PIPE_CACHE[key]
    _PIPE_CACHE.clear()
    manifest = read_manifest(checkpoint)
    base = resolve_base_model(manifest["base_model"])
    dtype = autocast_dtype(device, True, mixed_precision)
    pipe = StableDiffusionPipeline.from_pretrained(base, dtype=dtype or torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    method.apply_to_pipeline(pipe, Path(checkpoint) / unit)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    _PIPE_CACHE[key] = (pipe, dtype)
    return pipe, dtype


def read_manifest(checkpoint: Path) -> dict:
    """The manifest of a trained SD generator; WeightsError if the folder is not one."""
    path = Path(checkpoint) / MANIFEST
    if not path.is_file():
        raise WeightsError(f"{checkpoint} is not a trained Stable Diffusion generator (no {MANIFEST}); "
                           f"train it first (the train_generator job writes it)")
    return json.loads(path.read_text())


def sample_sd(method: SdMethod, checkpoint: Path, class_name: str, n: int, seed: int, device: str,
              **overrides) -> np.ndarray:
    """n grey uint8 images [n,H,W] of one class; overrides: scheduler, inference_steps, guidance_scale,
    negative_prompt, batch_size and the method's own settings, e.g. lora_scale (default: the values saved at
    training time)."""
    manifest = read_manifest(checkpoint)
    units = manifest["units"]
    unit = class_name if class_name in units else "all"
    if unit not in units or class_name not in units[unit]:
        known = sorted({c for cs in units.values() for c in cs})
        raise ValueError(f"class '{class_name}' was not trained in {checkpoint}; trained classes: {', '.join(known)}")
    if not (Path(checkpoint) / unit / "unit.json").is_file():
        raise WeightsError(f"{checkpoint}/{unit} is not finished: resume training before sampling")
    settings = {**manifest["sampling"], **{k: v for k, v in overrides.items() if v is not None}}
    pipe, dtype = load_pipeline(method, checkpoint, unit, device, settings["mixed_precision"])
    pipe.scheduler = make_scheduler(settings["scheduler"], pipe.scheduler.config)
    return run_pipeline(pipe, manifest["prompts"][class_name], n, seed, settings["inference_steps"],
                        settings["guidance_scale"], settings["negative_prompt"], settings["batch_size"],
                        manifest["resolution"], dtype, **method.pipeline_kwargs(settings))



def grid_images(parts: Parts, params: SdParams, prompts: dict[str, str], classes: list[str], dtype,
                seed: int) -> tuple[np.ndarray, list[str]]:
    """grid_per_class images per class from the weights being trained, and the class of each (a progress grid)."""
    was_training = parts.unet.training
    parts.unet.eval()
    pipe = pipeline_from_parts(parts)
    images, names = [], []
    for c in classes:
        images.append(run_pipeline(pipe, prompts[c], params.grid_per_class, seed, params.grid_inference_steps,
                                   params.guidance_scale, params.negative_prompt, params.grid_per_class,
                                   params.resolution, dtype))
        names += [c] * params.grid_per_class
    if was_training:
        parts.unet.train()
    return np.concatenate(images), names
