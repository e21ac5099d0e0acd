"""The Stable Diffusion base model: where its weights are (a local folder or the Hugging Face cache, never
downloaded) and its loaded parts (tokenizer, text encoder, VAE, UNet, training noise schedule).

diffusers and transformers are imported inside functions, so importing this module stays cheap. Attention runs
through PyTorch's scaled_dot_product_attention (diffusers' default processor), so no xformers is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xaug.engine.errors import WeightsError
from xaug.engine.generators.sd_params import SdParams

def _looks_like_repo_id(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name)) and not name.startswith((".", "~"))


def _how_to_provide(base_model: str) -> str:
    repo = base_model if _looks_like_repo_id(base_model) else "CompVis/stable-diffusion-v1-4"
    return (f"Provide it by running `huggingface-cli download {repo}` on a machine with internet access and copying "
            f"the Hugging Face cache (~/.cache/huggingface/hub, or $HF_HUB_CACHE) here, or set the generator's "
            f"params.base_model to a local diffusers folder (one with model_index.json, unet/, vae/, text_encoder/, "
            f"tokenizer/, scheduler/).")


def resolve_base_model(base_model: str) -> Path:
    """The local diffusers folder of `base_model` (a folder or a cached repo id); WeightsError at once if missing.

    Never touches the network: repo ids are looked up in the local Hugging Face cache only, so a machine without
    internet (or with HF_HUB_OFFLINE=1) gets one clear error instead of retries.
    """
    path = Path(base_model).expanduser()
    if path.exists():
        if (path / "model_index.json").is_file():
            return path.resolve()
        raise WeightsError(f"base_model '{base_model}' ({path.resolve()}) is not a diffusers model folder: it has "
                           f"no model_index.json. {_how_to_provide(base_model)}")
    if not _looks_like_repo_id(base_model):
        raise WeightsError(f"base_model '{base_model}': no such folder ({path.absolute()}). "
                           f"{_how_to_provide(base_model)}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = Path(snapshot_download(base_model, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError) as exc:
        raise WeightsError(f"base_model '{base_model}' is neither a local folder ({path.absolute()}) nor in the "
                           f"local Hugging Face cache ({_hub_cache()}); xaug does not download weights "
                           f"({type(exc).__name__}). "
                           f"{_how_to_provide(base_model)}") from None
    if not (snapshot / "model_index.json").is_file():
        raise WeightsError(f"base_model '{base_model}': the cached snapshot {snapshot} has no model_index.json "
                           f"(an incomplete download?). {_how_to_provide(base_model)}")
    return snapshot


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


@dataclass
class Parts:
    """The loaded components of a Stable Diffusion model being trained."""

    tokenizer: Any
    text_encoder: Any
    vae: Any
    unet: Any
    noise_scheduler: Any
    base_path: Path
    dtype: Any = None
    """Autocast dtype on the GPU (frozen weights are stored in it), None for fp32."""


def load_parts(params: SdParams, device: str, trains_text_encoder: bool) -> Parts:
    """Load tokenizer, text encoder, VAE, UNet and the DDPM training scheduler of the base model."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    base = resolve_base_model(params.base_model)
    dtype = params.precision(device).dtype
    try:
        tokenizer = CLIPTokenizer.from_pretrained(base / "tokenizer")
        text_encoder = CLIPTextModel.from_pretrained(base / "text_encoder")
        vae = AutoencoderKL.from_pretrained(base / "vae")
        unet = UNet2DConditionModel.from_pretrained(base / "unet")
        noise_scheduler = DDPMScheduler.from_pretrained(base / "scheduler")
    except OSError as exc:
        raise WeightsError(f"base_model '{params.base_model}' ({base}) is incomplete: {exc}. "
                           f"{_how_to_provide(params.base_model)}") from None
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    vae.to(device)
    text_encoder.to(device)
    if dtype is not None:  # frozen weights in half precision save memory; trained ones stay fp32
        vae.to(dtype=dtype)
        if not trains_text_encoder:
            text_encoder.to(dtype=dtype)
    unet.to(device)  # trained weights stay fp32; autocast runs the forward pass in half precision
    return Parts(tokenizer, text_encoder, vae, unet, noise_scheduler, base, dtype)

