"""Mixed precision: the one policy of every trainer and sampler (generators, classifiers, the sample job).

A recipe says `resources.amp: true|false`; Stable Diffusion params may also name a `mixed_precision` mode. From
these and the device this module decides, once for everything:

- the autocast dtype: none on the CPU or with amp off; bf16 on GPUs that support it (no loss scaling needed);
  on older GPUs fp16 with a GradScaler, or full fp32 for trainers that must not run fp16 (the GAN's R1 penalty
  and the DDPM train without loss scaling, so `fp16_fallback=False` keeps them in fp32 there);
- the GradScaler: enabled only for fp16 (a disabled one passes losses and steps through unchanged, so a trainer
  always calls it the same way);
- the memory format: channels_last for convolutional networks on a GPU when asked (on the CPU it only costs).

Attention needs no choice here: diffusers' default attention processor and timm's fused attention both call
PyTorch's scaled_dot_product_attention (flash / memory-efficient kernels on a GPU), so no xformers is needed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import torch

Mode = Literal["auto", "no", "bf16", "fp16"]


def autocast_dtype(device: str, amp: bool = True, mode: Mode = "auto",
                   fp16_fallback: bool = True) -> torch.dtype | None:
    """The autocast dtype for `device`, or None for full fp32: None on the CPU, with amp off or mode 'no';
    fp16/bf16 when named; 'auto': bf16 where the GPU supports it, else fp16 (None when not `fp16_fallback`)."""
    if not str(device).startswith("cuda") or not amp or mode == "no":
        return None
    if mode == "fp16":
        return torch.float16
    if mode == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16 if fp16_fallback else None


@dataclass(frozen=True)
class Precision:
    """What a trainer or sampler runs with: autocast dtype, loss scaling and memory format on one device."""

    device: str
    dtype: torch.dtype | None
    """Autocast dtype, None for full fp32."""
    channels_last: bool = False
    """Convolutional networks and their inputs in the channels-last memory format."""

    def autocast(self):
        """The autocast context of this precision (a no-op context for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(self.device).type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler, enabled only for fp16 (bf16 and fp32 need no loss scaling)."""
        return torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    def memory_format(self, x):
        """A module or a 4-D tensor in channels_last when chosen, else `x` itself."""
        if not self.channels_last:
            return x
        if isinstance(x, torch.nn.Module):
            return x.to(memory_format=torch.channels_last)
        return x.contiguous(memory_format=torch.channels_last)


def precision_for(device: str, amp: bool = True, mode: Mode = "auto", channels_last: bool = False,
                  fp16_fallback: bool = True) -> Precision:
    """The precision policy for `device` (see the module docstring); channels_last only on a GPU."""
    return Precision(device=str(device), dtype=autocast_dtype(device, amp, mode, fp16_fallback),
                     channels_last=channels_last and str(device).startswith("cuda"))
