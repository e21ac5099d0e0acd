"""The StyleGAN2-ADA-style GAN: trains on the CPU, samples per class, resumes identically, ADA behaves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from xaug.engine.checkpoint import has_checkpoint
from xaug.engine.generators.gan import GanConfig, GanTrainer
from xaug.engine.generators.gan_augment import augment
from xaug.engine.generators.gan_networks import Discriminator, high_pass
from xaug.engine.generators.registry import get_generator


def _gan():
    entry = get_generator("gan")
    return entry, entry.factory()


def test_registered_with_its_config():
    entry = get_generator("gan")
    assert entry.config_class is GanConfig
    assert GanConfig.model_fields["r1_gamma"].description  # docstrings become descriptions


def test_conditional_gan_trains_and_samples_each_class(tmp_path, tiny_data, tiny_gan_params, recording_hooks):
    entry, gan = _gan()
    params = GanConfig(**{**tiny_gan_params, "grid_every": 1})
    hooks = recording_hooks()
    out = gan.train(params, False, tiny_data, tmp_path, hooks, "cpu", seed=0)
    assert out.finished and out.step == 2 and hooks.steps == [1, 2]
    assert {"g_loss", "d_loss", "ada_p", "d_real_sign"} <= set(hooks.losses[0]) and "r1" in hooks.losses[0]
    assert all(np.isfinite(v) for losses in hooks.losses for v in losses.values())
    step, grid, names = hooks.grids[-1]
    assert step == 2 and grid.shape == (4, 32, 32) and names == ["healthy", "healthy", "viral", "viral"]
    assert has_checkpoint(tmp_path / "all" / "checkpoints") and (tmp_path / "generator.json").exists()
    for name in tiny_data.classes:
        images = gan.sample(out.checkpoint, name, 5, seed=3, device="cpu")
        assert images.shape == (5, 32, 32) and images.dtype == np.uint8
        assert images.std() > 0
    again = _gan()[1].sample(out.checkpoint, "viral", 5, seed=3, device="cpu")
    np.testing.assert_array_equal(again, gan.sample(out.checkpoint, "viral", 5, seed=3, device="cpu"))
    assert not np.array_equal(again, gan.sample(out.checkpoint, "viral", 5, seed=4, device="cpu"))
    with pytest.raises(Exception, match="not one of this GAN's classes"):
        gan.sample(out.checkpoint, "fungal", 1, seed=0, device="cpu")


def test_per_class_gan_trains_one_model_per_class(tmp_path, tiny_data, tiny_gan_params, recording_hooks):
    _, gan = _gan()
    hooks = recording_hooks()
    out = gan.train(GanConfig(**tiny_gan_params), True, tiny_data, tmp_path, hooks, "cpu", seed=0)
    assert out.finished and out.step == 4 and hooks.steps == [1, 2, 3, 4] and hooks.totals == {4}
    assert has_checkpoint(tmp_path / "healthy" / "checkpoints") and has_checkpoint(tmp_path / "viral" / "checkpoints")
    assert [names for _, _, names in hooks.grids] == [["healthy"] * 2, ["viral"] * 2]
    assert gan.sample(out.checkpoint, "viral", 2, seed=0, device="cpu").shape == (2, 32, 32)


def test_sampling_a_model_that_never_checkpointed_says_so(tmp_path, tiny_data, tiny_gan_params, recording_hooks):
    import shutil

    from xaug.engine.checkpoint import CheckpointError

    _, gan = _gan()
    out = gan.train(GanConfig(**tiny_gan_params), True, tiny_data, tmp_path, recording_hooks(), "cpu", seed=0)
    shutil.rmtree(tmp_path / "viral" / "checkpoints")
    assert gan.sample(out.checkpoint, "healthy", 1, seed=0, device="cpu").shape == (1, 32, 32)
    with pytest.raises(CheckpointError, match="viral/checkpoints holds no checkpoint"):
        _gan()[1].sample(out.checkpoint, "viral", 1, seed=0, device="cpu")


def test_resume_continues_the_same_loss_curve(tmp_path, tiny_data, tiny_gan_params, recording_hooks):
    params = GanConfig(**{**tiny_gan_params, "steps": 4})
    straight = recording_hooks()
    _gan()[1].train(params, False, tiny_data, tmp_path / "a", straight, "cpu", seed=1)

    first = recording_hooks(stop_after=2)
    out = _gan()[1].train(params, False, tiny_data, tmp_path / "b", first, "cpu", seed=1)
    assert not out.finished and out.step == 2 and first.steps == [1, 2]
    torch.manual_seed(999)  # a new process would start from another RNG state: resume must restore its own
    second = recording_hooks()
    out = _gan()[1].train(params, False, tiny_data, tmp_path / "b", second, "cpu", seed=1)
    assert out.finished and second.steps == [3, 4]
    resumed = first.losses + second.losses
    assert straight.losses[-1]["ada_p"] != tiny_gan_params["ada_p_init"]  # ADA state actually moved
    for a, b in zip(straight.losses, resumed, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key


def test_high_pass_discriminator_sees_fine_detail_and_trains_with_r1(tiny_gan_params):
    flat = torch.full((2, 1, 16, 16), 0.3)
    stripes = flat + 0.2 * (torch.arange(16) % 4 < 2).float().reshape(1, 1, 16, 1)  # rib-like bands, period 4 px
    assert high_pass(flat).abs().max() < 1e-5  # nothing but detail passes
    assert high_pass(stripes).abs().mean() > 0.05
    cfg = GanConfig(**{**tiny_gan_params, "d_high_pass": 1.5, "r1_interval": 1})
    D = Discriminator(cfg, 0)
    assert D.from_image.weight.shape[1] == 2  # image and its high frequencies
    assert Discriminator(GanConfig(**tiny_gan_params), 0).from_image.weight.shape[1] == 1  # off by default
    trainer = GanTrainer(cfg, 0, "cpu", seed=0)
    losses = trainer.train_step(torch.rand(2, 1, 32, 32) * 2 - 1, None, None)  # R1 differentiates through the blur
    assert losses["r1"] > 0 and all(np.isfinite(v) for v in losses.values())


def test_augment_identity_at_p0_and_differentiable():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 16, 16, requires_grad=True)
    assert augment(x, 0.0) is x
    y = augment(x, 1.0)
    assert y.shape == x.shape and not torch.allclose(y, x)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_ada_p_follows_the_overfitting_sign():
    cfg = GanConfig(resolution=8, channels_base=32, channels_max=4, z_dim=4, w_dim=4, mapping_layers=1, batch_size=4,
                    ada_interval=2, ada_kimg=0.1, ada_target=0.6)
    trainer = GanTrainer(cfg, 0, "cpu", seed=0)
    for _ in range(10):
        trainer._update_ada(1.0, batch=4)  # D is sure about every real: overfitting, p rises
    assert trainer.ada_p == pytest.approx(5 * 8 / 100)
    for _ in range(40):
        trainer._update_ada(-1.0, batch=4)
    assert trainer.ada_p == 0.0


def test_config_rejects_bad_values(tiny_gan_params):
    with pytest.raises(ValidationError, match="power of two"):
        GanConfig(**{**tiny_gan_params, "resolution": 48})
    with pytest.raises(ValidationError):
        GanConfig(**{**tiny_gan_params, "unknown_key": 1})


def test_bench_generators_cli_prints_gan_ratios():
    from typer.testing import CliRunner

    from xaug.engine.cli import load_commands

    result = CliRunner().invoke(load_commands(), ["bench", "generators", "--model", "gan", "--resolution", "16",
                                                  "--steps", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "gan train 16px" in result.output and "gan sample 16px" in result.output and "x" in result.output


def _halves(x):
    """(left - right) and (top - bottom) mean brightness of each image."""
    w = x.shape[-1] // 2
    return (x[..., :w].mean(dim=(1, 2, 3)) - x[..., w:].mean(dim=(1, 2, 3)),
            x[..., :w, :].mean(dim=(1, 2, 3)) - x[..., w:, :].mean(dim=(1, 2, 3)))


def test_augment_keeps_anatomy_unless_the_recipe_opts_into_flips_and_quarter_turns():
    torch.manual_seed(0)
    x = -torch.ones(128, 1, 32, 32)
    x[..., :16, :16] = 1.0  # bright top-left quadrant: left-right and top-bottom asymmetric
    left, top = _halves(augment(x, 1.0))
    assert (left > 0).all() and (top > 0).all()  # default: never mirrored, never turned by 90 degrees
    left, _ = _halves(augment(x, 1.0, xflip=True))
    assert 0.3 < (left < 0).float().mean() < 0.7  # about half mirrored
    left, top = _halves(augment(x, 1.0, rotate90=True))
    assert 0.5 < ((left < 0) | (top < 0)).float().mean() < 0.95  # about 3/4 turned
    assert GanConfig().ada_xflip is False and GanConfig().ada_rotate90 is False
