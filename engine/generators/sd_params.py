"""Settings of the three Stable Diffusion methods (the recipe's `params`: SdParams, shared, and SdFinetuneConfig,
DreamBoothConfig, LoraConfig), free of torch so that loading a recipe imports no model library; the prompt of each
class."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The paper's prompts (Bioengineering 2023, 10(12), 1421) for its five classes.
PAPER_PROMPTS = {
    "healthy": "An x-ray image of the lung, healthy patient, no signs of pneumonia",
    "bacterial": "An x-ray image of the lung with bacterial pneumonia",
    "viral": "An x-ray image of the lung with viral pneumonia",
    "fungal": "An x-ray image of the lung with fungal pneumonia",
    "covid19": "An x-ray image of the lung with covid-19 pneumonia",
}
GENERIC_PROMPT = "An x-ray image of the lung with {name}"
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

    def precision(self, device: str):
        """The training and sampling precision on `device` (engine/precision.py): amp and mixed_precision."""
        from xaug.engine.precision import precision_for

        return precision_for(device, self.amp, self.mixed_precision)



class SdFinetuneConfig(SdParams):
    """Full fine-tune of Stable Diffusion's UNet (and optionally its text encoder) on captioned images."""

    steps: int = Field(5000, ge=1)
    """Optimizer steps."""
    lr: float = Field(1e-5, gt=0)
    """Learning rate (the diffusers text-to-image example's default)."""
    train_text_encoder: bool = False
    """Also fine-tune the CLIP text encoder (more memory; the paper kept it frozen)."""


class DreamBoothConfig(SdParams):
    """DreamBooth: one UNet per class with an identifier token; optional prior preservation."""

    steps: int = Field(800, ge=1)
    """Optimizer steps per class."""
    lr: float = Field(5e-6, gt=0)
    """Learning rate (the diffusers DreamBooth example's default)."""
    identifier: str = "sks"
    """Rare token that names the instance (the classic DreamBooth choice); empty: train and sample with the plain
    class prompt, as the paper did."""
    instance_template: str = "{identifier} {prompt}"
    """Instance prompt built from the identifier and the class prompt (used only with an identifier)."""
    prior_prompt: str | None = None
    """Prompt of the prior-preservation images; default: the plain class prompt."""
    prior_preservation: bool = False
    """Also train on images of the plain class prompt generated by the base model."""
    num_class_images: int = Field(100, ge=1)
    """Prior-preservation images generated per class."""
    prior_loss_weight: float = Field(1.0, gt=0)
    """Weight of the prior-preservation loss."""
    class_image_steps: int = Field(25, ge=1)
    """Denoising steps (DPM-Solver++) used to generate the class images."""


class LoraConfig(SdParams):
    """LoRA adapters on Stable Diffusion's UNet attention layers."""

    steps: int = Field(5000, ge=1)
    """Optimizer steps."""
    lr: float = Field(1e-4, gt=0)
    """Learning rate (the diffusers LoRA example's default)."""
    rank: int = Field(4, ge=1)
    """LoRA rank r."""
    alpha: float | None = Field(None, gt=0)
    """LoRA alpha (scale = alpha / rank); defaults to the rank."""
    target_modules: list[str] = ["to_k", "to_q", "to_v", "to_out.0"]
    """UNet modules that get adapters (the attention projections)."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the LoRA path."""
    lora_scale: float = Field(1.0, ge=0)
    """Scale of the LoRA update when sampling (0: the base model, 1: the full adapter; the paper tried 0.5 and
    1.0); a `sample` call may override it."""

def prompt_for(class_name: str, params: SdParams) -> str:
    """The prompt of a class: params.prompts, else the paper's prompt, else the generic template."""
    if class_name in params.prompts:
        return params.prompts[class_name]
    if class_name in PAPER_PROMPTS:
        return PAPER_PROMPTS[class_name]
    return params.generic_prompt.format(name=class_name.replace("_", " "))
