"""A Stable Diffusion unit's training data: grey images resized and replicated to RGB, their prompt indices, and
VAE latents (cached once, or encoded every step), drawn as global batches that every DDP process slices alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xaug.engine.data.resize import resize_images
from xaug.engine.generators.base import TrainImages
from xaug.engine.generators.driver import Unit
from xaug.engine.generators.sd_method import PriorSet
from xaug.engine.generators.sd_model import Parts
from xaug.engine.generators.sd_params import SdParams


def grey_to_pixels(grey):
    """uint8 tensor [B,R,R] -> RGB float [B,3,R,R] in [-1, 1], the VAE's input (grey replicated to 3 channels)."""
    return (grey.float() / 127.5 - 1.0).unsqueeze(1).repeat(1, 3, 1, 1)


def tokenize(tokenizer, prompts: list[str]):
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


@dataclass
class TrainingData:
    """A unit's training data, kept on the CPU: grey uint8 images or cached latent distributions; prompt indices."""

    grey: Any = None
    latent_mean: Any = None
    latent_std: Any = None
    prompt_index: Any = None
    prompts: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.prompt_index.shape[0])


def build_data(parts: Parts, unit: Unit, prompts: dict[str, str], data: TrainImages, params: SdParams,
                device: str, extra: PriorSet | None) -> tuple[TrainingData, TrainingData | None]:
    import torch

    images, idx = [], []
    prompt_list = [prompts[c] for c in unit.classes]
    for i, c in enumerate(unit.classes):
        own = data.of_class(c)
        images.append(own)
        idx.append(np.full(len(own), i))
    grey = torch.tensor(resize_images(np.concatenate(images), params.resolution))
    main = TrainingData(grey=grey, prompt_index=torch.from_numpy(np.concatenate(idx)).long(), prompts=prompt_list)
    prior = None
    if extra is not None:
        prior = TrainingData(grey=torch.tensor(resize_images(extra.images, params.resolution)),
                      prompt_index=torch.full((len(extra.images),), len(prompt_list)),
                      prompts=prompt_list)
    if params.cache_latents:
        for d in (main, prior):
            if d is not None:
                d.latent_mean, d.latent_std = _encode_all(parts, d.grey, device, params.batch_size * 4)
                d.grey = None
    return main, prior


def _encode_all(parts: Parts, grey, device: str, batch: int):
    import torch

    means, stds = [], []
    with torch.no_grad():
        for i in range(0, grey.shape[0], batch):
            pixels = grey_to_pixels(grey[i:i + batch]).to(device, dtype=parts.vae.dtype)
            post = parts.vae.encode(pixels).latent_dist
            means.append(post.mean.float().cpu())
            stds.append(post.std.float().cpu())
    return torch.cat(means), torch.cat(stds)


def sample_latents(parts: Parts, d: TrainingData, index, gen, device: str, mine: slice = slice(None)):
    """Latents of the items `index[mine]`, sampled from their VAE posterior (scaled as the UNet expects).

    The posterior noise is drawn for the whole global batch `index` (the same stream in every process)."""
    import torch

    if d.latent_mean is not None:
        mean, std = d.latent_mean[index], d.latent_std[index]
        sample = mean + std * torch.randn(mean.shape, generator=gen)
        latents = sample[mine].to(device)
    else:
        with torch.no_grad():
            post = parts.vae.encode(grey_to_pixels(d.grey[index[mine]]).to(device, dtype=parts.vae.dtype)).latent_dist
            eps = torch.randn((len(index),) + tuple(post.mean.shape[1:]), generator=gen)[mine]
            latents = (post.mean + post.std * eps.to(device, dtype=post.mean.dtype)).float()
    return latents * parts.vae.config.scaling_factor
