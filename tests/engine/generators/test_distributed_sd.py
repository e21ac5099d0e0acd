"""Stable Diffusion fine-tuning (UNet and text encoder, 2 accumulated micro-batches, latents encoded every step)
on 2 accelerate (DDP, gloo) processes follows the 1-process run with the same global batch.

Marked slow: three Python processes importing diffusers and transformers take about a minute on a busy 2-core
machine (the training itself takes seconds). Run with `pytest -m slow tests/engine/generators/test_distributed_sd.py`.
Tolerance: as in test_distributed.py (same computation up to the order of float sums), losses at rel 1e-4; the
weights after 3 Adam steps at lr 1e-3 within 2e-4 (more sums: micro-batches, text encoder, Min-SNR weights; seen:
3e-5 for the UNet, 2e-6 for the text encoder).
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tiny_sd import RecordingHooks, tiny_images, tiny_sd_dir

from xaug.engine.generators.distributed import train_in_processes
from xaug.engine.generators.registry import get_generator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _weights(model_dir, part):
    return load_file(str(next((model_dir / "all" / part).glob("*.safetensors"))))


def test_two_process_sd_finetune_follows_one_process(tmp_path):
    entry = get_generator("sd_finetune")
    params = entry.config_class.model_validate(dict(
        base_model=str(tiny_sd_dir(str(tmp_path))), resolution=32, steps=3, batch_size=4, checkpoint_every=100,
        grid_every=100, grid_per_class=1, grid_inference_steps=1, inference_steps=2, save_precision="fp32",
        train_text_encoder=True, gradient_accumulation=2, cache_latents=False, lr=1e-3))
    data = tiny_images(4)
    two = RecordingHooks()
    out = train_in_processes("sd_finetune", params, False, data, tmp_path / "two", two, "cpu", 0, processes=2)
    assert out.finished and two.steps == [1, 2, 3] and len(two.grids) == 1
    one = RecordingHooks()
    entry.factory().train(params, False, data, tmp_path / "one", one, "cpu", 0)
    for a, b in zip(one.losses, two.losses, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    for part in ("unet", "text_encoder"):
        a, b = _weights(tmp_path / "one" / "model", part), _weights(out.checkpoint, part)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=2e-4, msg=f"{part} {key}")
