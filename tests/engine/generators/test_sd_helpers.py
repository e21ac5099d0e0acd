"""Fast checks of the Stable Diffusion helpers: base model lookup, prompts, params, optimizer state, grey output."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from xaug.engine.data.resize import resize_images
from xaug.store.errors import WeightsError
from xaug.engine.generators import sd_data, sd_model, sd_params, sd_sampling
from xaug.engine.generators.registry import get_generator


def test_missing_local_folder_fails_fast_with_how_to(tmp_path):
    start = time.perf_counter()
    with pytest.raises(WeightsError) as err:
        sd_model.resolve_base_model(str(tmp_path / "no-such-sd"))
    assert time.perf_counter() - start < 2.0
    assert "no-such-sd" in str(err.value) and "huggingface-cli download" in str(err.value)


def test_missing_repo_id_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    start = time.perf_counter()
    with pytest.raises(WeightsError) as err:
        sd_model.resolve_base_model("CompVis/stable-diffusion-v1-4")
    assert time.perf_counter() - start < 2.0
    message = str(err.value)
    assert "'CompVis/stable-diffusion-v1-4'" in message
    assert "huggingface-cli download CompVis/stable-diffusion-v1-4" in message


def test_folder_without_model_index_is_rejected(tmp_path):
    with pytest.raises(WeightsError, match="model_index.json"):
        sd_model.resolve_base_model(str(tmp_path))


def test_training_with_missing_base_model_fails_before_loading(tmp_path):
    from tiny_sd import RecordingHooks, tiny_images

    entry = get_generator("lora")
    params = entry.config_class(base_model=str(tmp_path / "missing"), resolution=32, steps=1)
    start = time.perf_counter()
    with pytest.raises(WeightsError):
        entry.factory().train(params, False, tiny_images(), tmp_path / "work", RecordingHooks(), "cpu", 0)
    assert time.perf_counter() - start < 2.0


def test_prompts_paper_override_and_generic():
    params = sd_params.SdParams(prompts={"viral": "custom viral"})
    assert sd_params.prompt_for("covid19", params) == "An x-ray image of the lung with covid-19 pneumonia"
    assert sd_params.prompt_for("healthy", params) == (
        "An x-ray image of the lung, healthy patient, no signs of pneumonia")
    assert sd_params.prompt_for("viral", params) == "custom viral"
    assert sd_params.prompt_for("pleural_effusion", params) == "An x-ray image of the lung with pleural effusion"


@pytest.mark.parametrize("name", ["sd_finetune", "dreambooth", "lora"])
def test_registered_configs_reject_unknown_keys_and_document_fields(name):
    entry = get_generator(name)
    with pytest.raises(ValidationError):
        entry.config_class.model_validate({"stepz": 3})
    schema = entry.config_class.model_json_schema()
    undocumented = [k for k, v in schema["properties"].items() if not v.get("description")]
    assert undocumented == []
    assert entry.config_class().resolution == 512


def test_default_sampling_steps_follow_scheduler():
    assert sd_params.SdParams().steps_to_sample() == 25
    assert sd_params.SdParams(scheduler="pndm").steps_to_sample() == 50
    assert sd_params.SdParams(scheduler="ddim", inference_steps=10).steps_to_sample() == 10


def test_grey_conversion_of_pipeline_output():
    rgb = np.zeros((2, 4, 4, 3), np.float32)
    rgb[0] = 1.0
    rgb[1, ..., 1] = 0.5
    grey = sd_sampling.to_grey_uint8(rgb)
    assert grey.shape == (2, 4, 4) and grey.dtype == np.uint8
    assert grey[0].min() == 255 and grey[1, 0, 0] == round(0.587 * 0.5 * 255)


def test_images_are_resized_and_replicated_to_rgb():
    images = np.full((3, 40, 40), 255, np.uint8)
    grey = torch.tensor(resize_images(images, 32, chunk=2))  # what sd_data.build_data does
    assert tuple(grey.shape) == (3, 32, 32) and grey.dtype == torch.uint8 and int(grey.min()) == 255
    pixels = sd_data.grey_to_pixels(grey)
    assert tuple(pixels.shape) == (3, 3, 32, 32)
    assert float(pixels.min()) == pytest.approx(1.0)


def test_mixed_precision_only_on_cuda_and_amp_switches_it_off():
    assert sd_params.SdParams().precision("cpu").dtype is None
    assert sd_params.SdParams(mixed_precision="fp16").precision("cuda").dtype == torch.float16
    assert sd_params.SdParams(mixed_precision="bf16").precision("cuda:0").dtype == torch.bfloat16
    assert sd_params.SdParams(mixed_precision="fp16", amp=False).precision("cuda").dtype is None
