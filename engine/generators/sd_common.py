"""What the three Stable Diffusion generators share: base model lookup, prompts, params, the training loop,
resumable checkpoints without pickle, and the sampler.

`sd_finetune`, `dreambooth` and `lora` each supply an `SdMethod` (which weights train, how they are saved and
loaded, extra loss terms); everything else lives here so that the three behave the same. diffusers, transformers
and peft are imported inside functions, so importing this module stays cheap. Attention runs through PyTorch's
scaled_dot_product_attention (diffusers' default processor), so no xformers is needed.

Layout of a generator's `work_dir`:
    model/manifest.json            method, base model, units (one per class or one "all"), prompts, sampling
    model/<unit>/unet/             trained UNet (save_pretrained, safetensors)       fine-tune, DreamBooth
    model/<unit>/text_encoder/     trained text encoder (fine-tune with train_text_encoder)
    model/<unit>/lora/             LoRA adapters in diffusers format (pipe.load_lora_weights)  LoRA
    model/<unit>/unit.json         the unit is finished (model/<unit>/ is published whole: temp folder, rename)
    resume/<unit>/step-N/          resumable checkpoints (engine/checkpoint.py): trainable weights, state.safetensors
                                   (optimizer, RNG), state.json (step, scaler); `latest` names the newest
    class_images/<unit>/           DreamBooth prior-preservation images from the base model (PNG)
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from xaug.engine.errors import DataError, WeightsError
from xaug.engine.generators import distributed as dist
from xaug.engine.generators.base import TrainHooks, TrainImages, TrainOutcome

log = logging.getLogger(__name__)

# The paper's prompts (Bioengineering 2023, 10(12), 1421) for its five classes.
PAPER_PROMPTS = {
    "healthy": "An x-ray image of the lung, healthy patient, no signs of pneumonia",
    "bacterial": "An x-ray image of the lung with bacterial pneumonia",
    "viral": "An x-ray image of the lung with viral pneumonia",
    "fungal": "An x-ray image of the lung with fungal pneumonia",
    "covid19": "An x-ray image of the lung with covid-19 pneumonia",
}
GENERIC_PROMPT = "An x-ray image of the lung with {name}"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
SCHEDULERS = ("dpmsolver++", "pndm", "ddim", "euler")


class SdParams(BaseModel):
    """Settings shared by sd_finetune, dreambooth and lora (recipes put them under generators[i].params)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    base_model: str = "CompVis/stable-diffusion-v1-4"
    """A local diffusers folder, or a Hugging Face repo id already in the local cache (never downloaded here)."""
    prompts: dict[str, str] = {}
    """Prompt per class name; overrides the paper's prompts and the generic template."""
    generic_prompt: str = GENERIC_PROMPT
    """Template for classes without a prompt of their own; {name} is the class name with _ as spaces."""
    resolution: int = Field(512, ge=32, le=2048, multiple_of=8)
    """Side in pixels of training and sampled images (grey images are resized and replicated to RGB)."""
    steps: int = Field(1000, ge=1)
    """Optimizer steps per trained model."""
    batch_size: int = Field(4, ge=1)
    """Images per micro-batch."""
    gradient_accumulation: int = Field(1, ge=1)
    """Micro-batches per optimizer step (effective batch = batch_size x gradient_accumulation)."""
    lr: float = Field(1e-5, gt=0)
    """Learning rate (constant after warm-up)."""
    lr_warmup_steps: int = Field(0, ge=0)
    """Linear warm-up steps."""
    adam_weight_decay: float = Field(1e-2, ge=0)
    """AdamW weight decay (the diffusers example scripts' default)."""
    max_grad_norm: float = Field(1.0, gt=0)
    """Gradient clipping norm."""
    amp: bool = True
    """Mixed precision on the GPU at all (the train_generator job sets it false when resources.amp is false)."""
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """With amp: auto is bf16 on GPUs that support it, else fp16; always fp32 on the CPU. Trained weights stay fp32."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass: much less memory, about 20-30% slower."""
    use_8bit_adam: bool = True
    """bitsandbytes' 8-bit AdamW on CUDA when bitsandbytes is installed; otherwise AdamW (logged)."""
    snr_gamma: float | None = Field(5.0, gt=0)
    """Min-SNR loss weighting gamma (5.0 recommended); null for the plain MSE loss."""
    cache_latents: bool = True
    """Encode the training images with the VAE once instead of every step (same result, faster)."""
    checkpoint_every: int = Field(500, ge=1)
    """Save a resumable checkpoint every this many optimizer steps."""
    grid_every: int = Field(500, ge=1)
    """Sample a small grid per class every this many steps (shown in the TUI)."""
    grid_per_class: int = Field(2, ge=1, le=16)
    """Images per class in each grid."""
    grid_inference_steps: int = Field(20, ge=1)
    """Denoising steps for grid images (DPM-Solver++)."""
    scheduler: Literal["dpmsolver++", "pndm", "ddim", "euler"] = "dpmsolver++"
    """Sampling scheduler: dpmsolver++ (default, 25 steps), pndm (the paper's default, 50 steps), ddim, euler."""
    inference_steps: int | None = Field(None, ge=1)
    """Denoising steps when sampling; default 25 for dpmsolver++, 50 for the others."""
    guidance_scale: float = Field(7.5, ge=0)
    """Classifier-free guidance scale."""
    negative_prompt: str = ""
    """Negative prompt when sampling (empty: none)."""
    sample_batch_size: int = Field(8, ge=1)
    """Images per sampling batch."""
    save_precision: Literal["fp32", "fp16"] = "fp16"
    """Precision of the final saved weights (resumable checkpoints are always fp32)."""

    def steps_to_sample(self) -> int:
        """Denoising steps used by `sample`."""
        return self.inference_steps or (25 if self.scheduler == "dpmsolver++" else 50)


def prompt_for(class_name: str, params: SdParams) -> str:
    """The prompt of a class: params.prompts, else the paper's prompt, else the generic template."""
    if class_name in params.prompts:
        return params.prompts[class_name]
    if class_name in PAPER_PROMPTS:
        return PAPER_PROMPTS[class_name]
    return params.generic_prompt.format(name=class_name.replace("_", " "))


# --------------------------------------------------------------------------------------------------- base model


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


# --------------------------------------------------------------------------------------------------- devices


def train_dtype(params: SdParams, device: str):
    """The autocast dtype of training and of frozen weights, or None for full fp32."""
    import torch

    if not device.startswith("cuda") or not params.amp or params.mixed_precision == "no":
        return None
    if params.mixed_precision == "fp16":
        return torch.float16
    if params.mixed_precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _autocast(device: str, dtype):
    import contextlib

    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)


# --------------------------------------------------------------------------------------------------- method hooks


@dataclass
class Unit:
    """One model to train: all classes (name 'all') or one class (per-class training)."""

    name: str
    classes: list[str]


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


@dataclass
class PriorSet:
    """DreamBooth's prior-preservation images (grey uint8 [N,H,W]), their prompt, and the loss weight."""

    images: np.ndarray
    prompt: str
    weight: float


class SdMethod:
    """What differs between fine-tune, DreamBooth and LoRA; the defaults are those of a full UNet fine-tune."""

    name = "sd_finetune"

    def trains_text_encoder(self, params) -> bool:
        """Whether the text encoder is trained too."""
        return False

    def training_prompts(self, params, unit: Unit) -> dict[str, str]:
        """Prompt per class used in training (and to sample the trained model)."""
        return {c: prompt_for(c, params) for c in unit.classes}

    def setup_trainable(self, parts: Parts, params) -> list:
        """Mark trainable weights; return the parameters the optimizer updates."""
        parts.unet.requires_grad_(True)
        return [p for p in parts.unet.parameters()]

    def save_weights(self, parts: Parts, folder: Path, final: bool, params) -> None:
        """Save the trained weights (resumable fp32 state when not final)."""
        import torch

        unet = parts.unet
        if final and params.save_precision == "fp16":
            unet = unet.to(torch.float16)
        unet.save_pretrained(folder / "unet", safe_serialization=True)
        if self.trains_text_encoder(params):
            te = parts.text_encoder
            if final and params.save_precision == "fp16":
                te = te.to(torch.float16)
            te.save_pretrained(folder / "text_encoder", safe_serialization=True)

    def load_weights(self, parts: Parts, folder: Path, params) -> None:
        """Load resumable weights saved by `save_weights` into the parts."""
        from diffusers import UNet2DConditionModel

        trained = UNet2DConditionModel.from_pretrained(folder / "unet", dtype=parts.unet.dtype)
        parts.unet.load_state_dict(trained.state_dict())
        if self.trains_text_encoder(params):
            from transformers import CLIPTextModel

            te = CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=parts.text_encoder.dtype)
            parts.text_encoder.load_state_dict(te.state_dict())

    def apply_to_pipeline(self, pipe, folder: Path) -> None:
        """Put a unit's final weights into a pipeline loaded from the base model."""
        from diffusers import UNet2DConditionModel

        pipe.unet = UNet2DConditionModel.from_pretrained(folder / "unet", dtype=pipe.unet.dtype)
        if (folder / "text_encoder").is_dir():
            from transformers import CLIPTextModel

            pipe.text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder",
                                                              dtype=pipe.text_encoder.dtype)

    def prior_set(self, parts: Parts, unit: Unit, params, work_dir: Path, device: str, seed: int) -> PriorSet | None:
        """Extra images trained with their own loss term (DreamBooth prior preservation); None by default."""
        return None

    def sampling_settings(self, params) -> dict:
        """Method-specific sampling settings kept in the manifest (overridable per `sample` call); none by default."""
        return {}

    def pipeline_kwargs(self, settings: dict) -> dict:
        """Extra keyword arguments for the pipeline call, from the sampling settings; none by default."""
        return {}


# --------------------------------------------------------------------------------------------------- loading


def load_parts(params: SdParams, device: str, trains_text_encoder: bool) -> Parts:
    """Load tokenizer, text encoder, VAE, UNet and the DDPM training scheduler of the base model."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    base = resolve_base_model(params.base_model)
    dtype = train_dtype(params, device)
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


def resize_grey(images: np.ndarray, resolution: int, chunk: int = 64):
    """Grey uint8 [N,H,W] -> uint8 tensor [N,R,R] (bilinear, antialiased), resized in chunks to bound memory."""
    import torch
    import torch.nn.functional as F

    out = []
    for i in range(0, len(images), chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + chunk])).float().unsqueeze(1)
        if x.shape[-2:] != (resolution, resolution):
            x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
        out.append(x.round().clamp(0, 255).to(torch.uint8).squeeze(1))
    return torch.cat(out)


def grey_to_pixels(grey):
    """uint8 tensor [B,R,R] -> RGB float [B,3,R,R] in [-1, 1], the VAE's input (grey replicated to 3 channels)."""
    return (grey.float() / 127.5 - 1.0).unsqueeze(1).repeat(1, 3, 1, 1)


def _tokenize(tokenizer, prompts: list[str]):
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


@dataclass
class _Data:
    """A unit's training data, kept on the CPU: grey uint8 images or cached latent distributions; prompt indices."""

    grey: Any = None
    latent_mean: Any = None
    latent_std: Any = None
    prompt_index: Any = None
    prompts: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.prompt_index.shape[0])


def _build_data(parts: Parts, unit: Unit, prompts: dict[str, str], data: TrainImages, params: SdParams,
                device: str, extra: PriorSet | None) -> tuple[_Data, _Data | None]:
    import torch

    images, idx = [], []
    prompt_list = [prompts[c] for c in unit.classes]
    for i, c in enumerate(unit.classes):
        own = data.of_class(c)
        images.append(own)
        idx.append(np.full(len(own), i))
    if sum(len(x) for x in images) == 0:
        raise DataError(f"no training images of class(es) {', '.join(unit.classes)} in this fold's training split: "
                        f"a generator cannot be trained without them (check the dataset's labels and folds)")
    grey = resize_grey(np.concatenate(images), params.resolution)
    main = _Data(grey=grey, prompt_index=torch.from_numpy(np.concatenate(idx)).long(), prompts=prompt_list)
    prior = None
    if extra is not None:
        prior = _Data(grey=resize_grey(extra.images, params.resolution),
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


def _latents(parts: Parts, d: _Data, index, gen, device: str, mine: slice = slice(None)):
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


# --------------------------------------------------------------------------------------------------- optimizer


def make_optimizer(trainable: list, params: SdParams, device: str):
    """8-bit AdamW on CUDA when bitsandbytes is installed and wanted, else torch AdamW; and its description."""
    import torch

    if params.use_8bit_adam and device.startswith("cuda"):
        try:
            import bitsandbytes as bnb

            return (bnb.optim.AdamW8bit(trainable, lr=params.lr, weight_decay=params.adam_weight_decay),
                    "AdamW8bit (bitsandbytes)")
        except ImportError:
            log.warning("use_8bit_adam: bitsandbytes is not installed; using torch AdamW (pip install bitsandbytes "
                        "to save optimizer memory)")
            return (torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.adam_weight_decay),
                    "AdamW (bitsandbytes not installed)")
    why = "" if not params.use_8bit_adam else " (8-bit Adam needs CUDA)"
    return torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.adam_weight_decay), f"AdamW{why}"


# --------------------------------------------------------------------------------------------------- checkpoints


def _resume_dir(work_dir: Path, unit: Unit) -> Path:
    """The unit's checkpoint root (engine/checkpoint.py: atomic step folders and a `latest` pointer)."""
    from xaug.store.artifacts import artifact_path

    return artifact_path(work_dir, "resume", unit.name)  # unit names are class names: data


def save_resume(method: SdMethod, parts: Parts, optimizer, scaler, gen, step: int, work_dir: Path, unit: Unit,
                params: SdParams, device: str) -> None:
    """Write the resumable state of a unit as one atomic checkpoint: the method's trainable weights (its own
    format), optimizer moments, RNG states (the training generator's and torch's), scaler and step."""
    from xaug.engine import checkpoint as ckpt

    opt_tensors, opt_scalars = ckpt.optimizer_to_state(optimizer)
    tensors = {**ckpt.prefixed("opt", opt_tensors), **ckpt.prefixed("rng", ckpt.rng_to_tensors()),
               "train_rng": gen.get_state()}
    scalars = {"optimizer": opt_scalars, "scaler": scaler.state_dict() if scaler is not None else None,
               "format": FORMAT_VERSION}
    ckpt.save_checkpoint(_resume_dir(work_dir, unit), step, tensors, scalars,
                         fill=lambda folder: method.save_weights(parts, folder, final=False, params=params))


def load_resume(method: SdMethod, parts: Parts, optimizer, scaler, gen, work_dir: Path, unit: Unit,
                params: SdParams, device: str) -> int:
    """Restore a unit's state if a checkpoint exists; the step to continue from (0 when starting fresh)."""
    from xaug.engine import checkpoint as ckpt

    saved = ckpt.resume_checkpoint(_resume_dir(work_dir, unit))
    if saved is None:
        return 0
    method.load_weights(parts, saved.path, params)
    tensors = saved.tensors()
    ckpt.optimizer_from_state(optimizer, ckpt.unprefixed("opt", tensors), saved.scalars["optimizer"])
    gen.set_state(tensors["train_rng"])
    ckpt.rng_from_tensors(ckpt.unprefixed("rng", tensors))
    if scaler is not None and saved.scalars.get("scaler"):
        scaler.load_state_dict(saved.scalars["scaler"])
    return saved.step


def _unit_done(work_dir: Path, unit: Unit) -> bool:
    return (work_dir / "model" / unit.name / "unit.json").is_file()


def write_manifest(method: SdMethod, params: SdParams, units: list[Unit], prompts: dict[str, str],
                   work_dir: Path) -> Path:
    """Describe the trained model so that `sample` needs only the checkpoint folder."""
    model = work_dir / "model"
    model.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": FORMAT_VERSION,
        "method": method.name,
        "base_model": params.base_model,
        "resolution": params.resolution,
        "units": {u.name: u.classes for u in units},
        "prompts": prompts,
        "sampling": {"scheduler": params.scheduler, "inference_steps": params.steps_to_sample(),
                     "guidance_scale": params.guidance_scale, "negative_prompt": params.negative_prompt,
                     "batch_size": params.sample_batch_size,
                     "mixed_precision": params.mixed_precision if params.amp else "no",
                     **method.sampling_settings(params)},
    }
    (model / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return model


# --------------------------------------------------------------------------------------------------- training


def units_for(classes: list[str], per_class: bool) -> list[Unit]:
    """One unit per class, or one unit 'all' with every class."""
    return [Unit(c, [c]) for c in classes] if per_class else [Unit("all", list(classes))]


def train_sd(method: SdMethod, params: SdParams, per_class: bool, data: TrainImages, work_dir: Path,
             hooks: TrainHooks, device: str, seed: int) -> TrainOutcome:
    """Train (or resume) every unit of a Stable Diffusion method; stops early, checkpointed, on should_stop()."""
    work_dir = Path(work_dir)
    resolve_base_model(params.base_model)  # fail before anything heavy
    units = units_for(data.classes, per_class)
    prompts: dict[str, str] = {}
    for u in units:
        prompts.update(method.training_prompts(params, u))
    model_dir = work_dir / "model"
    if dist.is_main_process():  # under DDP rank 0 writes the shared files
        write_manifest(method, params, units, prompts, work_dir)
    total = params.steps * len(units)
    for i, unit in enumerate(units):
        if _unit_done(work_dir, unit):
            continue
        # A stop that came while the previous unit finished (all DDP processes must agree on it).
        if i > 0 and dist.agreed_stop(dist.accelerator_for(device), hooks.should_stop()):
            return TrainOutcome(checkpoint=model_dir, finished=False, step=i * params.steps)
        step = _train_unit(method, params, unit, data, work_dir, hooks, device, seed + 1000 * i, i * params.steps,
                           total)
        if step < params.steps:
            return TrainOutcome(checkpoint=model_dir, finished=False, step=i * params.steps + step)
    return TrainOutcome(checkpoint=model_dir, finished=True, step=total)


def _lr_at(params: SdParams, step: int) -> float:
    if params.lr_warmup_steps and step < params.lr_warmup_steps:
        return params.lr * (step + 1) / params.lr_warmup_steps
    return params.lr


@dataclass
class _UnitRun:
    """Everything one unit's training loop works with."""

    parts: Parts
    prompts: dict[str, str]
    main: _Data
    prior_data: _Data | None
    prior_weight: float
    input_ids: Any
    embeds: Any
    """Precomputed prompt embeddings when the text encoder is frozen (None when it trains)."""
    trainable: list
    optimizer: Any
    scaler: Any
    gen: Any
    """The training RNG: data order, VAE posterior samples, noise and timesteps (saved with each checkpoint);
    seeded alike in every DDP process, which each keep their slice of every global batch."""
    dtype: Any
    acc: Any
    """This process's accelerate.Accelerator (one process, or one rank of a DDP group)."""
    unet: Any
    """The UNet that the forward pass runs (DDP-wrapped under several processes; parts.unet is the bare one)."""
    text_encoder: Any
    """Likewise for the text encoder when it trains."""


def _prepare_unit(method: SdMethod, params: SdParams, unit: Unit, data: TrainImages, work_dir: Path, device: str,
                  seed: int) -> _UnitRun:
    """Load the base model, the unit's data (and prior images), the optimizer; restore a checkpoint if any."""
    import torch

    torch.manual_seed(seed)
    acc = dist.accelerator_for(device)
    trains_te = method.trains_text_encoder(params)
    parts = load_parts(params, device, trains_te)
    with acc.main_process_first():  # rank 0 generates DreamBooth's class images; the others then read them
        prior = method.prior_set(parts, unit, params, work_dir, device, seed)
    prompts = method.training_prompts(params, unit)
    main, prior_data = _build_data(parts, unit, prompts, data, params, device, prior)
    input_ids = _tokenize(parts.tokenizer, main.prompts + ([prior.prompt] if prior is not None else [])).to(device)
    if params.gradient_checkpointing:
        parts.unet.enable_gradient_checkpointing()
        if trains_te:
            parts.text_encoder.gradient_checkpointing_enable()
    trainable = method.setup_trainable(parts, params)
    if trains_te:
        parts.text_encoder.requires_grad_(True)
        parts.text_encoder.train()
        trainable = trainable + list(parts.text_encoder.parameters())
    trainable = [p for p in trainable if p.requires_grad]
    optimizer, _ = make_optimizer(trainable, params, device)
    dtype = train_dtype(params, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    embeds = None
    if not trains_te:
        with torch.no_grad():
            embeds = parts.text_encoder(input_ids)[0]
    if trains_te:
        unet, text_encoder, optimizer = acc.prepare(parts.unet, parts.text_encoder, optimizer)
    else:
        (unet, optimizer), text_encoder = acc.prepare(parts.unet, optimizer), parts.text_encoder
    return _UnitRun(parts, prompts, main, prior_data, prior.weight if prior else 0.0, input_ids, embeds, trainable,
                    optimizer, scaler, torch.Generator().manual_seed(seed), dtype, acc, unet, text_encoder)


def _train_unit(method: SdMethod, params: SdParams, unit: Unit, data: TrainImages, work_dir: Path,
                hooks: TrainHooks, device: str, seed: int, offset: int, total: int) -> int:
    """Train one unit from its last checkpoint; the step reached (params.steps when finished)."""
    run = _prepare_unit(method, params, unit, data, work_dir, device, seed)
    step = load_resume(method, run.parts, run.optimizer, run.scaler, run.gen, work_dir, unit, params, device)
    main = run.acc.is_main_process  # under DDP only rank 0 reports, samples grids and saves
    run.parts.unet.train()
    while step < params.steps:
        for group in run.optimizer.param_groups:
            group["lr"] = _lr_at(params, step)
        losses = _optimizer_step(run, params, device)
        step += 1
        if main:
            hooks.progress(offset + step, total, losses)
        if main and (step % params.grid_every == 0 or step == params.steps):
            _grid(run.parts, params, run.prompts, unit, hooks, offset + step, device, run.dtype, seed)
        stop = dist.agreed_stop(run.acc, hooks.should_stop())
        if main and step < params.steps and (step % params.checkpoint_every == 0 or stop):
            save_resume(method, run.parts, run.optimizer, run.scaler, run.gen, step, work_dir, unit, params, device)
        if stop and step < params.steps:
            run.acc.wait_for_everyone()
            return step
    if main:
        _save_final(method, run.parts, params, unit, work_dir)
    run.acc.wait_for_everyone()  # no rank moves on before rank 0 has marked the unit finished
    return step


def _save_final(method: SdMethod, parts: Parts, params: SdParams, unit: Unit, work_dir: Path) -> None:
    """Publish the unit's final weights atomically (unit.json inside marks it finished), then drop its resume state."""
    from xaug.engine import checkpoint as ckpt

    def fill(folder: Path) -> None:
        method.save_weights(parts, folder, final=True, params=params)
        (folder / "unit.json").write_text(json.dumps({"classes": unit.classes, "steps": params.steps}))

    ckpt.publish_folder(work_dir / "model" / unit.name, fill)
    shutil.rmtree(_resume_dir(work_dir, unit), ignore_errors=True)


def _optimizer_step(run: _UnitRun, params: SdParams, device: str) -> dict[str, float]:
    """One optimizer step over gradient_accumulation micro-batches; the step's mean losses."""
    import torch

    parts, main, prior_data = run.parts, run.main, run.prior_data
    batch = params.batch_size
    mine = dist.shard(run.acc, batch)  # this process's rows of each global micro-batch
    totals = {"loss": 0.0}
    for micro in range(params.gradient_accumulation):
        index = torch.randint(len(main), (batch,), generator=run.gen)
        latents = _latents(parts, main, index, run.gen, device, mine)
        prompt_idx = main.prompt_index[index][mine]
        rows, n_main = torch.arange(batch)[mine], latents.shape[0]
        if prior_data is not None:
            pidx = torch.randint(len(prior_data), (batch,), generator=run.gen)
            latents = torch.cat([latents, _latents(parts, prior_data, pidx, run.gen, device, mine)])
            prompt_idx = torch.cat([prompt_idx, prior_data.prompt_index[pidx][mine]])
            rows = torch.cat([rows, batch + rows])  # the prior half follows the instance half in the global batch
        with _autocast(device, run.dtype):
            if run.embeds is None:
                cond = run.text_encoder(run.input_ids[prompt_idx.to(device)])[0]
            else:
                cond = run.embeds[prompt_idx.to(device)]
            per_sample = _diffusion_loss(parts, params, run.unet, latents, cond, run.gen, device, rows,
                                         batch * (2 if prior_data is not None else 1))
        loss = per_sample[:n_main].mean()
        if prior_data is not None:
            prior_loss = per_sample[n_main:].mean()
            share = float(prior_loss.detach()) / params.gradient_accumulation
            totals["prior_loss"] = totals.get("prior_loss", 0.0) + share
            loss = loss + run.prior_weight * prior_loss
        totals["loss"] += float(loss.detach()) / params.gradient_accumulation
        scaled = loss / params.gradient_accumulation
        with _gradient_sync(run, micro == params.gradient_accumulation - 1):
            run.acc.backward(run.scaler.scale(scaled) if run.scaler is not None else scaled)
    if run.scaler is not None:
        run.scaler.unscale_(run.optimizer)
    torch.nn.utils.clip_grad_norm_(run.trainable, params.max_grad_norm)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return dist.mean_across(run.acc, totals)


def _gradient_sync(run: _UnitRun, sync: bool):
    """No DDP all-reduce on the micro-batches before the last one of a step (gradients accumulate locally)."""
    import contextlib

    stack = contextlib.ExitStack()
    if not sync:
        for module in {id(m): m for m in (run.unet, run.text_encoder) if m is not None}.values():
            stack.enter_context(run.acc.no_sync(module))
    return stack


def _diffusion_loss(parts: Parts, params: SdParams, unet, latents, cond, gen, device, rows, global_size: int):
    """Per-sample noise-prediction MSE, Min-SNR weighted when snr_gamma is set, for the `rows` of a global batch
    of `global_size` (noise and timesteps are drawn for all of it: the same stream in every process)."""
    import torch
    import torch.nn.functional as F

    sched = parts.noise_scheduler
    noise = torch.randn((global_size,) + tuple(latents.shape[1:]), generator=gen)[rows].to(device)
    t = torch.randint(0, sched.config.num_train_timesteps, (global_size,), generator=gen)[rows].to(device)
    noisy = sched.add_noise(latents, noise, t)
    if sched.config.prediction_type == "v_prediction":
        target = sched.get_velocity(latents, noise, t)
    else:
        target = noise
    pred = unet(noisy, t, cond, return_dict=False)[0]
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=[1, 2, 3])
    if params.snr_gamma is not None:
        from diffusers.training_utils import compute_snr

        snr = compute_snr(sched, t)
        weight = torch.clamp(snr, max=params.snr_gamma)
        weight = weight / (snr + 1) if sched.config.prediction_type == "v_prediction" else weight / snr
        per_sample = per_sample * weight
    return per_sample


# --------------------------------------------------------------------------------------------------- sampling


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
                 resolution: int, autocast_dtype=None, **call_kwargs) -> np.ndarray:
    """n grey uint8 images from a pipeline; image i uses torch.Generator seeded seed + i (batch-independent).
    `call_kwargs` go to the pipeline call (e.g. LoRA's cross_attention_kwargs)."""
    import torch

    device = str(pipe.device)
    out = []
    for start in range(0, n, batch):
        count = min(batch, n - start)
        gens = [torch.Generator().manual_seed(seed + start + j) for j in range(count)]
        with torch.no_grad(), _autocast(device, autocast_dtype):
            result = pipe([prompt] * count, negative_prompt=[negative] * count if negative else None,
                          num_inference_steps=steps, guidance_scale=guidance, generator=gens, height=resolution,
                          width=resolution, output_type="np", **call_kwargs)
        out.append(to_grey_uint8(result.images))
    return np.concatenate(out) if out else np.zeros((0, resolution, resolution), np.uint8)


def _grid(parts: Parts, params: SdParams, prompts: dict[str, str], unit: Unit, hooks: TrainHooks, step: int,
          device: str, dtype, seed: int) -> None:
    """Sample grid_per_class images per class with the weights being trained and hand them to hooks.grid."""
    was_training = parts.unet.training
    parts.unet.eval()
    pipe = pipeline_from_parts(parts)
    images, names = [], []
    for c in unit.classes:
        images.append(run_pipeline(pipe, prompts[c], params.grid_per_class, seed, params.grid_inference_steps,
                                   params.guidance_scale, params.negative_prompt, params.grid_per_class,
                                   params.resolution, dtype))
        names += [c] * params.grid_per_class
    hooks.grid(step, np.concatenate(images), names)
    if was_training:
        parts.unet.train()


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
    dtype = train_dtype(SdParams(mixed_precision=mixed_precision), device)
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

