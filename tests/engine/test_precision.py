"""The one mixed-precision policy: autocast dtype per device and amp/mode, loss scaling only for fp16."""

from __future__ import annotations

import pytest
import torch

from xaug.engine.precision import autocast_dtype, precision_for


def test_cpu_and_amp_off_run_in_fp32():
    assert autocast_dtype("cpu") is None
    assert autocast_dtype("cpu", mode="bf16") is None
    assert autocast_dtype("cuda", amp=False) is None
    assert autocast_dtype("cuda:1", mode="no") is None


def test_named_modes_and_auto_fallback(monkeypatch):
    assert autocast_dtype("cuda", mode="fp16") == torch.float16
    assert autocast_dtype("cuda:0", mode="bf16") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype("cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype("cuda") == torch.float16  # classifiers and SD scale the loss
    assert autocast_dtype("cuda", fp16_fallback=False) is None  # GAN and DDPM train without loss scaling


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled, but CUDA is not available")
def test_grad_scaler_only_for_fp16_and_passes_through_otherwise():
    loss = torch.tensor(2.5)
    scaler = precision_for("cpu").grad_scaler()
    assert not scaler.is_enabled() and scaler.scale(loss) is loss
    assert precision_for("cuda", mode="fp16").grad_scaler().is_enabled() is (torch.cuda.is_available())
    assert not precision_for("cuda", mode="bf16").grad_scaler().is_enabled()


def test_channels_last_only_on_a_gpu_and_autocast_is_a_noop_in_fp32():
    x = torch.randn(2, 3, 4, 4)
    cpu = precision_for("cpu", channels_last=True)
    assert not cpu.channels_last and cpu.memory_format(x) is x
    assert precision_for("cuda", channels_last=True).channels_last
    with cpu.autocast():
        y = torch.nn.functional.linear(x.flatten(1), torch.randn(5, 48))
    assert y.dtype == torch.float32


@pytest.mark.parametrize("model", ["gan", "ddpm"])
def test_sampling_follows_the_amp_training_was_given(tmp_path, model):
    """resources.amp false reaches the sampler through the generator's manifest (generator.json params)."""
    from xaug.engine.checkpoint import read_json
    from xaug.engine.jobs.train_generator import generator_params
    from xaug.engine.recipe.schema import GeneratorSpec

    spec = GeneratorSpec.model_validate({"name": model, "model": model, "params": {"resolution": 16}})
    _, params = generator_params(spec, amp=False)
    assert params.amp is False
    from xaug.engine.generators.driver import units_for, write_manifest

    write_manifest(tmp_path, model, params, False, ["a", "b"], units_for(["a", "b"], False))
    saved = read_json(tmp_path / "generator.json")["params"]
    assert saved["amp"] is False
    assert precision_for("cuda", saved["amp"], fp16_fallback=False).dtype is None
