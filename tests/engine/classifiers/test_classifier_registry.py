"""Building timm classifiers: unknown names, pretrained weights from a file, a folder or the HF cache, and the
clear, immediate error when no weights are available offline."""

import time

import pytest
import timm
import torch
from safetensors.torch import save_file

from xaug.engine.classifiers.registry import check_model_name, create_classifier, input_stats
from xaug.engine.errors import WeightsError
from xaug.engine.recipe.schema import ClassifierSpec


def _imagenet_like_weights(path, seed=0):
    """A 3-channel, 1000-class test_efficientnet state dict saved as safetensors (what a timm hub file holds)."""
    torch.manual_seed(seed)
    source = timm.create_model("test_efficientnet", num_classes=1000, in_chans=3)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    return source


def test_missing_weights_offline_fail_fast_and_say_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = ClassifierSpec(model="resnet50", pretrained=True, in_chans=3)
    start = time.monotonic()
    with pytest.raises(WeightsError) as err:
        create_classifier(spec, num_classes=5)
    assert time.monotonic() - start < 2.0
    message = str(err.value)
    assert "resnet50" in message and "empty-cache" in message
    assert "huggingface-cli download timm/resnet50.a1_in1k" in message and "weights:" in message
    assert "never downloads" in message and "xaug weights fetch RECIPE" in message


def test_missing_weights_path_is_a_weights_error(tmp_path):
    spec = ClassifierSpec(model="test_efficientnet", pretrained=True, weights=str(tmp_path / "nope.safetensors"))
    with pytest.raises(WeightsError, match="does not exist"):
        create_classifier(spec, num_classes=3)
    (tmp_path / "empty").mkdir()
    spec = ClassifierSpec(model="test_efficientnet", pretrained=True, weights=str(tmp_path / "empty"))
    with pytest.raises(WeightsError, match="holds no weights file"):
        create_classifier(spec, num_classes=3)


def test_weights_file_loads_with_new_head_and_one_channel_stem(tmp_path):
    source = _imagenet_like_weights(tmp_path / "w.safetensors")
    spec = ClassifierSpec(model="test_efficientnet", pretrained=True, weights=str(tmp_path / "w.safetensors"),
                          in_chans=1)
    model = create_classifier(spec, num_classes=3)
    assert model.get_classifier().out_features == 3
    # timm folds the RGB stem into one channel by summing the input-channel weights
    torch.testing.assert_close(model.conv_stem.weight, source.conv_stem.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.conv_head.weight, source.conv_head.weight)


def test_weights_found_in_a_folder_and_in_the_hf_cache(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    source = _imagenet_like_weights(folder / "model.safetensors")
    spec = ClassifierSpec(model="test_efficientnet", pretrained=True, weights=str(folder), in_chans=3)
    model = create_classifier(spec, num_classes=4)
    torch.testing.assert_close(model.conv_stem.weight, source.conv_stem.weight)

    repo_id = timm.models.get_pretrained_cfg("test_efficientnet").hf_hub_id
    repo = tmp_path / "cache" / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (folder / "model.safetensors").rename(repo / "snapshots" / "abc123" / "model.safetensors")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    model = create_classifier(ClassifierSpec(model="test_efficientnet", pretrained=True, in_chans=3), 4)
    torch.testing.assert_close(model.conv_stem.weight, source.conv_stem.weight)


def test_weights_of_another_architecture_are_a_weights_error(tmp_path):
    _imagenet_like_weights(tmp_path / "w.safetensors")
    spec = ClassifierSpec(model="test_resnet", pretrained=True, weights=str(tmp_path / "w.safetensors"))
    with pytest.raises(WeightsError, match="do not fit classifier 'test_resnet'"):
        create_classifier(spec, num_classes=3)


def test_unknown_model_suggests_a_name_and_stats_follow_channels():
    with pytest.raises(KeyError, match="Did you mean 'resnet50'"):
        check_model_name("resnet5O")
    model = create_classifier(ClassifierSpec(model="test_efficientnet", in_chans=1), 3)
    mean, std = input_stats(model, 1)
    assert len(mean) == len(std) == 1
    assert len(input_stats(model, 3)[0]) == 3


def test_missing_weights_are_never_downloaded_even_with_the_hub_online(tmp_path, monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *args, **kwargs: calls.append(args))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(WeightsError, match="not available locally.*xaug weights fetch RECIPE"):
        create_classifier(ClassifierSpec(model="test_efficientnet", pretrained=True), 3)
    assert calls == []
