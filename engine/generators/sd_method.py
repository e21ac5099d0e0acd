"""What differs between the Stable Diffusion methods (fine-tune, DreamBooth, LoRA): the hooks each one overrides.

`sd_finetune`, `dreambooth` and `lora` each supply an `SdMethod` (which weights train, how they are saved and
loaded, extra loss terms, sampling settings); sd_training.py and sd_sampling.py do the rest the same for all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xaug.engine.generators.driver import Unit
from xaug.engine.generators.sd_model import Parts
from xaug.engine.generators.sd_params import prompt_for


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

