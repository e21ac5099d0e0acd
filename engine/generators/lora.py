"""LoRA on Stable Diffusion: low-rank adapters (peft) on the UNet's attention projections, one model for all classes.

Final adapters are written with `StableDiffusionPipeline.save_lora_weights` in diffusers format (with the rank and
alpha as adapter metadata), so plain diffusers loads them with `pipe.load_lora_weights(folder)`. Resumable
checkpoints hold the peft state dict as safetensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xaug.engine.generators.base import TrainHooks, TrainImages, TrainOutcome
from xaug.engine.generators.registry import register_generator
from xaug.engine.generators.sd_method import SdMethod
from xaug.engine.generators.sd_model import Parts
from xaug.engine.generators.sd_params import LoraConfig
from xaug.engine.generators.sd_sampling import sample_sd
from xaug.engine.generators.sd_training import train_sd

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"


class LoraMethod(SdMethod):
    """Freezes the UNet and trains only peft LoRA adapters."""

    name = "lora"

    def setup_trainable(self, parts: Parts, params) -> list:
        """Add the adapter to the UNet; only its weights train."""
        from peft import LoraConfig as PeftLoraConfig

        import torch
        from diffusers.training_utils import cast_training_params

        parts.unet.requires_grad_(False)
        if parts.dtype is not None:  # the frozen base in half precision, as the diffusers LoRA script does
            parts.unet.to(dtype=parts.dtype)
        config = PeftLoraConfig(r=params.rank, lora_alpha=params.alpha or params.rank, lora_dropout=params.dropout,
                                init_lora_weights="gaussian", target_modules=list(params.target_modules))
        parts.unet.add_adapter(config)
        cast_training_params(parts.unet, torch.float32)  # adapters train in fp32
        return [p for p in parts.unet.parameters() if p.requires_grad]

    def save_weights(self, parts: Parts, folder: Path, final: bool, params) -> None:
        """Final: diffusers-format LoRA file; resumable: the peft state dict (both safetensors)."""
        import torch
        from peft.utils import get_peft_model_state_dict

        state = get_peft_model_state_dict(parts.unet)
        if not final:
            from safetensors.torch import save_file

            folder.mkdir(parents=True, exist_ok=True)
            tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
            save_file(tensors, str(folder / "lora_peft.safetensors"))
            return
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers

        dtype = torch.float16 if params.save_precision == "fp16" else torch.float32
        diffusers_state = convert_state_dict_to_diffusers(state)
        layers = {k: v.detach().to("cpu", dtype).contiguous() for k, v in diffusers_state.items()}
        StableDiffusionPipeline.save_lora_weights(folder / "lora", unet_lora_layers=layers, safe_serialization=True,
                                                  weight_name=LORA_WEIGHTS,
                                                  unet_lora_adapter_metadata=_adapter_metadata(parts.unet))

    def load_weights(self, parts: Parts, folder: Path, params) -> None:
        """Load the resumable peft state dict into the UNet's adapter."""
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        result = set_peft_model_state_dict(parts.unet, load_file(str(folder / "lora_peft.safetensors")))
        unexpected = getattr(result, "unexpected_keys", None)
        if unexpected:
            raise ValueError(f"{folder}: LoRA checkpoint does not match the adapter ({len(unexpected)} unexpected "
                             f"keys, e.g. {unexpected[0]}); was rank or target_modules changed? delete the folder")

    def sampling_settings(self, params) -> dict:
        """The LoRA scale used when sampling."""
        return {"lora_scale": params.lora_scale}

    def pipeline_kwargs(self, settings: dict) -> dict:
        """The LoRA scale, as diffusers takes it per call (cross_attention_kwargs 'scale')."""
        return {"cross_attention_kwargs": {"scale": float(settings.get("lora_scale", 1.0))}}

    def apply_to_pipeline(self, pipe, folder: Path) -> None:
        """Load the adapters exactly as a plain diffusers user would."""
        pipe.load_lora_weights(folder / "lora", weight_name=LORA_WEIGHTS)


def _adapter_metadata(unet) -> dict:
    """The adapter's LoraConfig as JSON-able metadata, so that loading restores alpha (not only the rank)."""
    config = unet.peft_config["default"].to_dict()
    return {k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}


@register_generator("lora", LoraConfig, distributed=True)
class Lora:
    """LoRA on Stable Diffusion behind the generator contract."""

    method = LoraMethod()

    def train(self, params: LoraConfig, per_class: bool, data: TrainImages, work_dir: Path, hooks: TrainHooks,
              device: str, seed: int) -> TrainOutcome:
        """Train (or resume) the adapters in work_dir; one adapter set for all classes unless per_class."""
        return train_sd(self.method, _as_config(params), per_class, data, work_dir, hooks, device, seed)

    def sample(self, checkpoint: Path, class_name: str, n: int, seed: int, device: str, **overrides) -> np.ndarray:
        """n grey uint8 images [n,H,W] of a class (image i from seed + i)."""
        return sample_sd(self.method, checkpoint, class_name, n, seed, device, **overrides)


def _as_config(params) -> LoraConfig:
    return params if isinstance(params, LoraConfig) else LoraConfig.model_validate(params)
