"""The pixel-space DDPM: trains on the CPU, samples per class with each sampler, resumes identically."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from xaug.engine.checkpoint import load_checkpoint
from xaug.engine.generators.ddpm import DdpmConfig
from xaug.engine.generators.registry import get_generator


def _ddpm():
    return get_generator("ddpm").factory()


def test_conditional_ddpm_trains_and_samples_each_class_with_each_sampler(tmp_path, tiny_data, tiny_ddpm_params,
                                                                           recording_hooks):
    params = DdpmConfig(**{**tiny_ddpm_params, "grid_every": 2})
    hooks = recording_hooks()
    out = _ddpm().train(params, False, tiny_data, tmp_path, hooks, "cpu", seed=0)
    assert out.finished and out.step == 2 and hooks.steps == [1, 2]
    assert all(np.isfinite(losses["loss"]) and losses["loss"] > 0 for losses in hooks.losses)
    assert hooks.grids[-1][0] == 2 and hooks.grids[-1][1].shape == (2, 32, 32)
    saved = load_checkpoint(tmp_path / "all" / "checkpoints")
    assert saved.step == 2 and (saved.path / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert (saved.path / "scheduler" / "scheduler_config.json").exists()
    ddpm = _ddpm()
    for name in tiny_data.classes:
        images = ddpm.sample(out.checkpoint, name, 4, seed=1, device="cpu")
        assert images.shape == (4, 32, 32) and images.dtype == np.uint8 and images.std() > 0
    np.testing.assert_array_equal(ddpm.sample(out.checkpoint, "viral", 2, seed=5, device="cpu"),
                                  _ddpm().sample(out.checkpoint, "viral", 2, seed=5, device="cpu"))
    # Other samplers read the same checkpoint: switch by rewriting the manifest's params.
    import json

    manifest_path = tmp_path / "generator.json"
    manifest = json.loads(manifest_path.read_text())
    for sampler in ("ddpm", "ddim"):
        manifest["params"]["sampler"] = sampler
        manifest_path.write_text(json.dumps(manifest))
        images = _ddpm().sample(out.checkpoint, "healthy", 2, seed=1, device="cpu")
        assert images.shape == (2, 32, 32) and images.dtype == np.uint8


def test_per_class_ddpm_with_guidance_free_unconditional_models(tmp_path, tiny_data, tiny_ddpm_params,
                                                                 recording_hooks):
    hooks = recording_hooks()
    out = _ddpm().train(DdpmConfig(**tiny_ddpm_params), True, tiny_data, tmp_path, hooks, "cpu", seed=0)
    assert out.finished and out.step == 4 and hooks.steps == [1, 2, 3, 4]
    assert all((load_checkpoint(tmp_path / c / "checkpoints").path / "unet").is_dir() for c in ("healthy", "viral"))
    assert _ddpm().sample(out.checkpoint, "viral", 3, seed=0, device="cpu").shape == (3, 32, 32)


def test_guided_sampling_runs(tmp_path, tiny_data, tiny_ddpm_params, recording_hooks):
    params = DdpmConfig(**{**tiny_ddpm_params, "steps": 1, "guidance_scale": 3.0, "sample_steps": 1})
    out = _ddpm().train(params, False, tiny_data, tmp_path, recording_hooks(), "cpu", seed=0)
    assert _ddpm().sample(out.checkpoint, "healthy", 2, seed=0, device="cpu").shape == (2, 32, 32)


def test_resume_continues_the_same_loss_curve(tmp_path, tiny_data, tiny_ddpm_params, recording_hooks):
    params = DdpmConfig(**{**tiny_ddpm_params, "steps": 4, "cond_drop_prob": 0.5})
    straight = recording_hooks()
    _ddpm().train(params, False, tiny_data, tmp_path / "a", straight, "cpu", seed=2)

    first = recording_hooks(stop_after=2)
    out = _ddpm().train(params, False, tiny_data, tmp_path / "b", first, "cpu", seed=2)
    assert not out.finished and out.step == 2
    torch.manual_seed(12345)
    second = recording_hooks()
    out = _ddpm().train(params, False, tiny_data, tmp_path / "b", second, "cpu", seed=2)
    assert out.finished and second.steps == [3, 4]
    resumed = first.losses + second.losses
    for a, b in zip(straight.losses, resumed, strict=True):
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-7), key
    assert straight.losses[-1]["ema_decay"] > straight.losses[0]["ema_decay"]


def test_config_rejects_bad_shapes(tiny_ddpm_params):
    with pytest.raises(ValidationError, match="norm_num_groups"):
        DdpmConfig(**{**tiny_ddpm_params, "block_out_channels": (8, 12)})
    with pytest.raises(ValidationError, match="divisible"):
        DdpmConfig(**{**tiny_ddpm_params, "resolution": 33})
    with pytest.raises(ValidationError):
        DdpmConfig(**{**tiny_ddpm_params, "sampler": "euler"})


def test_bench_rows_compare_dpm_solver_with_ddpm_reference():
    from xaug.engine.bench.generators_bench import ddpm_rows

    rows = ddpm_rows("cpu", 16, steps=1, reference_sample_steps=50)
    assert [r["name"] for r in rows] == ["ddpm train 16px", "ddpm sample 16px (DPM-Solver++ 25 vs DDPM 50)"]
    assert all(r["xaug"] > 0 and r["reference"] > 0 for r in rows)
    assert rows[1]["ratio"] > 1.2  # 25 solver steps instead of 50 denoising steps


# diffusers' examples/unconditional_image_generation/train_unconditional.py builds this UNet2DModel.
DIFFUSERS_EXAMPLE = dict(
    block_out_channels=(128, 128, 256, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"))


def test_paper_recipe_ddpm_is_the_diffusers_example_unet_at_256px():
    from xaug.engine.generators.ddpm import build_unet
    from xaug.engine.recipe.loader import load_recipe

    spec = next(g for g in load_recipe("recipes/paper.yaml").recipe.generators if g.model == "ddpm")
    cfg = DdpmConfig.model_validate(spec.params)
    assert cfg.resolution == 256
    small = cfg.model_copy(update=dict(block_out_channels=(32,) * 6, resolution=64))  # same layout, cheap to build
    unet = build_unet(small, 0)
    assert unet.config["layers_per_block"] == DIFFUSERS_EXAMPLE["layers_per_block"]
    for key in ("down_block_types", "up_block_types"):
        assert tuple(unet.config[key]) == DIFFUSERS_EXAMPLE[key]
    assert tuple(cfg.block_out_channels) == DIFFUSERS_EXAMPLE["block_out_channels"]


def test_attention_defaults_to_the_lowest_resolution_level_and_checks_levels():
    from xaug.engine.generators.ddpm import build_unet

    unet = build_unet(DdpmConfig(resolution=16, block_out_channels=(32, 32, 32), norm_num_groups=8), 0)
    assert unet.config["down_block_types"][-1] == "AttnDownBlock2D"
    assert unet.config["up_block_types"][0] == "AttnUpBlock2D"
    with pytest.raises(ValidationError, match="attention_levels"):
        DdpmConfig(block_out_channels=(32, 32), attention_levels=(2,))
