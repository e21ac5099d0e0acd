"""A generator you already have: sample from a local diffusers pipeline folder, without training.

`pipeline` names a folder saved with `save_pretrained`: an unconditional pipeline (DDPMPipeline, DDIMPipeline, ...:
one per class, since they take no class) or a text-conditioned one (Stable Diffusion: one for every class, each
class sampled with its prompt; optionally with LoRA weights at a scale). Either is one pipeline for all classes,
or, with `per_class: true`, a folder holding one pipeline folder per class, named after the class:

    generators:
      - {name: my_ddpm, model: pretrained_pipeline, per_class: true, params: {pipeline: models/ddpm}}
        # models/ddpm/healthy/model_index.json, models/ddpm/viral/model_index.json, ...
      - {name: my_sd, model: pretrained_pipeline, params: {pipeline: models/sd15, lora: models/xray-lora,
                                                           lora_scale: 0.8, prompts: {viral: "..."}}}

The train_generator job trains nothing: it records what it found (pipeline class and components per class, LoRA)
in `model/generator.json`, which the sample job reads. Samples are grey uint8 images like every generator's, so
the image-quality and classifier jobs use them unchanged. Image i of a call comes from torch.Generator seeded
`seed + i` (independent of the batch size). diffusers is imported only when sampling.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from xaug.store.errors import WeightsError
from xaug.engine.generators.base import TrainHooks, TrainImages, TrainOutcome
from xaug.engine.generators.registry import register_generator
from xaug.engine.data.resize import resize_images
from xaug.engine.generators.sd_params import GENERIC_PROMPT, prompt_for

MANIFEST = "generator.json"
PIPELINE_INDEX = "model_index.json"


class PretrainedPipelineParams(BaseModel):
    """Sample from a local diffusers pipeline folder without training (see the module docstring for layouts)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    pipeline: str
    """A local diffusers pipeline folder (with model_index.json), relative to the recipe file; with per_class: true,
    a folder holding one such pipeline folder per class, named after the class."""
    lora: str | None = None
    """LoRA weights for a Stable Diffusion pipeline (diffusers format, as `pipe.load_lora_weights` reads them): a
    folder with pytorch_lora_weights.safetensors, or one .safetensors file; relative to the recipe file."""
    lora_scale: float = Field(1.0, ge=0)
    """Scale of the LoRA update (0: the pipeline without it, 1: the full adapter)."""
    prompts: dict[str, str] = {}
    """Text-conditioned pipelines: the prompt per class name; classes without one get the paper's prompt or
    generic_prompt. Unconditional pipelines ignore prompts."""
    generic_prompt: str = GENERIC_PROMPT
    """Template for classes without a prompt of their own; {name} is the class name with _ as spaces."""
    negative_prompt: str = ""
    """Negative prompt of text-conditioned pipelines (empty: none)."""
    guidance_scale: float = Field(7.5, ge=0)
    """Classifier-free guidance scale of text-conditioned pipelines."""
    scheduler: Literal["pipeline", "dpmsolver++", "pndm", "ddim", "euler"] = "pipeline"
    """Sampling scheduler: the one saved with the pipeline, or another configured like it."""
    inference_steps: int | None = Field(None, ge=1)
    """Denoising steps; default: the pipeline's own default (e.g. 1000 for DDPMPipeline, 50 for Stable Diffusion)."""
    resolution: int | None = Field(None, ge=8, le=4096)
    """Side in pixels of the saved samples (antialiased resize); default: the pipeline's own output size."""
    sample_batch_size: int = Field(8, ge=1)
    """Images per sampling batch."""
    amp: bool = True
    """Half precision on the GPU at all (always fp32 on the CPU)."""
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """With amp on a GPU: auto is bf16 where supported, else fp16."""

    def recipe_problems(self, resolve: Callable[[str], Path], classes: list[str] | None,
                        per_class: bool) -> Iterable[tuple[tuple[str, ...], str]]:
        """What is wrong with the folders these params name, as (params key, message): checked by `xaug recipe
        check` (and every load of the recipe), so that a missing folder fails before anything is queued."""
        folder = resolve(self.pipeline)
        folders = [folder / c for c in classes or []] if per_class else [folder]
        missing = [f for f in folders if not (f / PIPELINE_INDEX).is_file()]
        if not folder.is_dir():
            yield ("pipeline",), f"{folder} is not a folder (a diffusers pipeline saved with save_pretrained)"
        elif per_class and (folder / PIPELINE_INDEX).is_file():
            yield ("pipeline",), (f"{folder} is one pipeline (it has {PIPELINE_INDEX}), but per_class is true: set "
                                  "per_class: false, or point at a folder of one pipeline folder per class")
        elif per_class and missing:
            yield ("pipeline",), (f"per_class is true, but {folder} has no pipeline folder (with {PIPELINE_INDEX}) "
                                  f"for class{'es' if len(missing) > 1 else ''} {', '.join(f.name for f in missing)}"
                                  f": expected {missing[0] / PIPELINE_INDEX}")
        elif missing:
            hint = " (with one pipeline folder per class inside it, set per_class: true)" \
                if any(folder.glob(f"*/{PIPELINE_INDEX}")) else ""
            yield ("pipeline",), f"{folder} is not a diffusers pipeline folder: it has no {PIPELINE_INDEX}{hint}"
        else:
            try:
                unconditional = [f for f in folders if not _describe(f)["text_conditioned"]]
            except WeightsError as exc:
                yield ("pipeline",), str(exc)
                return
            if unconditional and not per_class and len(classes or []) > 1:
                yield ("pipeline",), (f"{folder} is an unconditional pipeline, which cannot tell classes apart: "
                                      "give one per class (per_class: true, a folder of one pipeline folder per "
                                      "class)")
            if unconditional and self.lora is not None:
                yield ("lora",), (f"LoRA weights apply to text-conditioned (Stable Diffusion) pipelines, but "
                                  f"{unconditional[0]} is unconditional")
        if self.lora is not None and not resolve(self.lora).exists():
            yield ("lora",), f"{resolve(self.lora)} does not exist (a LoRA folder or .safetensors file)"


@register_generator("pretrained_pipeline", PretrainedPipelineParams)
class PretrainedPipeline:
    """A local diffusers pipeline behind the generator contract: `train` records it, `sample` runs it."""

    def __init__(self) -> None:
        self._loaded: tuple[str, object] | None = None  # (pipeline folder, pipeline): one kept, as a job samples
        # every batch of a class in turn

    def train(self, params: PretrainedPipelineParams, per_class: bool, data: TrainImages, work_dir: Path,
              hooks: TrainHooks, device: str, seed: int) -> TrainOutcome:
        """Train nothing: write `generator.json` naming each class's pipeline folder, its pipeline class and
        components (from model_index.json), and the LoRA weights; WeightsError if a folder is not a pipeline (any
        more: the recipe check saw it was)."""
        folders = {c: _pipeline_folder(params, per_class, c) for c in data.classes}
        manifest = {"model": "pretrained_pipeline", "per_class": per_class, "classes": list(data.classes),
                    "params": params.model_dump(),
                    "pipelines": {c: {"folder": str(f), **_describe(f)} for c, f in folders.items()},
                    "lora": str(_lora_weights(params)) if params.lora else None}
        from xaug.engine import checkpoint as ckpt  # torch: not at import (recipes load this module's params)

        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(work_dir / MANIFEST, manifest)
        return TrainOutcome(checkpoint=work_dir, finished=True, step=0)

    def sample(self, checkpoint: Path, class_name: str, n: int, seed: int, device: str) -> np.ndarray:
        """n grey uint8 images [n, H, W] of a class from its pipeline (image i from seed + i)."""
        from xaug.engine import checkpoint as ckpt

        manifest = ckpt.read_json(Path(checkpoint) / MANIFEST)
        if class_name not in manifest["pipelines"]:
            raise WeightsError(f"class '{class_name}' has no pipeline in {checkpoint}/{MANIFEST} (classes: "
                               f"{', '.join(manifest['pipelines'])}); re-run its train_generator job")
        params = PretrainedPipelineParams.model_validate(manifest["params"])
        found = manifest["pipelines"][class_name]
        pipe = self._pipeline(found["folder"], manifest["lora"], params, device)
        if found["text_conditioned"]:
            images = _sample_text(pipe, prompt_for(class_name, params), n, seed, params)
        else:
            images = _sample_unconditional(pipe, n, seed, params)
        return resize_images(images, params.resolution) if params.resolution else images

    def _pipeline(self, folder: str, lora: str | None, params: PretrainedPipelineParams, device: str):
        """The pipeline of a folder on `device` (with LoRA and scheduler); the last one loaded is kept."""
        if self._loaded is None or self._loaded[0] != folder:
            self._loaded = None  # free the previous class's pipeline before loading the next
            self._loaded = (folder, _load(Path(folder), lora, params, device))
        return self._loaded[1]


def _pipeline_folder(params: PretrainedPipelineParams, per_class: bool, class_name: str) -> Path:
    folder = Path(params.pipeline).expanduser()
    return folder / class_name if per_class else folder


def _lora_weights(params: PretrainedPipelineParams) -> Path:
    path = Path(params.lora).expanduser()
    if not path.exists():
        raise WeightsError(f"lora: {path} does not exist (a LoRA folder or .safetensors file)")
    return path


def _describe(folder: Path) -> dict:
    """The pipeline class and components of a pipeline folder, from its model_index.json."""
    index = folder / PIPELINE_INDEX
    if not index.is_file():
        raise WeightsError(f"{folder} is not a diffusers pipeline folder (no {PIPELINE_INDEX}); save "
                           "one with pipe.save_pretrained(folder)")
    try:
        config = json.loads(index.read_text())
    except ValueError as exc:
        raise WeightsError(f"{index} is not valid JSON ({exc}); save the pipeline again") from None
    components = sorted(k for k, v in config.items() if not k.startswith("_") and isinstance(v, list) and v[0])
    return {"class": config.get("_class_name"), "diffusers_version": config.get("_diffusers_version"),
            "components": components, "text_conditioned": "text_encoder" in components}


def _load(folder: Path, lora: str | None, params: PretrainedPipelineParams, device: str):
    """Load a pipeline folder (local files only) with its weights in the sampling precision (inputs follow the
    UNet's dtype, so no autocast is needed); apply LoRA and the scheduler."""
    import torch
    from diffusers import DiffusionPipeline

    from xaug.engine.generators.sd_sampling import make_scheduler
    from xaug.engine.precision import autocast_dtype

    dtype = autocast_dtype(device, params.amp, params.mixed_precision)
    extra = {}
    if "safety_checker" in json.loads((folder / PIPELINE_INDEX).read_text()):
        # Its NSFW filter blanks medical images it misreads; xaug's own Stable Diffusion pipelines drop it too.
        extra = {"safety_checker": None, "requires_safety_checker": False}
    pipe = DiffusionPipeline.from_pretrained(folder, dtype=dtype or torch.float32, local_files_only=True, **extra)
    if lora is not None:
        path = Path(lora)
        if path.is_file():
            pipe.load_lora_weights(path.parent, weight_name=path.name)
        else:
            pipe.load_lora_weights(path)
    if params.scheduler != "pipeline":
        pipe.scheduler = make_scheduler(params.scheduler, pipe.scheduler.config)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sample_text(pipe, prompt: str, n: int, seed: int, params: PretrainedPipelineParams) -> np.ndarray:
    """A text-conditioned pipeline at its own size, LoRA at params.lora_scale (sd_sampling's sampler)."""
    from xaug.engine.generators.sd_sampling import run_pipeline

    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    extra = {"cross_attention_kwargs": {"scale": params.lora_scale}} if params.lora else {}
    return run_pipeline(pipe, prompt, n, seed, params.inference_steps or 50, params.guidance_scale,
                        params.negative_prompt, params.sample_batch_size, size, **extra)


def _sample_unconditional(pipe, n: int, seed: int, params: PretrainedPipelineParams) -> np.ndarray:
    """An unconditional pipeline (DDPMPipeline, DDIMPipeline, ...), one generator per image."""
    import torch

    from xaug.engine.generators.sd_sampling import to_grey_uint8

    steps = {"num_inference_steps": params.inference_steps} if params.inference_steps else {}
    out = []
    for start in range(0, n, params.sample_batch_size):
        count = min(params.sample_batch_size, n - start)
        generators = [torch.Generator().manual_seed(seed + start + j) for j in range(count)]
        with torch.no_grad():
            images = pipe(batch_size=count, generator=generators, output_type="np", **steps).images
        images = np.asarray(images)
        out.append(to_grey_uint8(images[..., 0] if images.shape[-1] == 1 else images))
    return np.concatenate(out)
