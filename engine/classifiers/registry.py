"""Classifiers are timm models picked by name in a recipe (`model: resnet50`), built for 1 or 3 input channels.

Pretrained weights never come from the network while a study runs: they come from `weights:` (a local
.safetensors/.pth/.bin file, or a folder holding one), or from the Hugging Face cache, filled beforehand by
`xaug weights fetch RECIPE`. When neither has them, one `WeightsError` says which model, where we looked and how to
provide the weights, at once (no minutes of retries); `xaug submit` finds that out before queueing anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import timm
from torch import nn

from xaug.engine.classifiers.augment import preset_model_kwargs
from xaug.engine.errors import WeightsError
from xaug.engine.generators.registry import suggest
from xaug.engine.recipe.schema import ClassifierSpec

# File names looked for, in order, inside a weights folder or a Hugging Face cache snapshot.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pth", "open_clip_model.safetensors")
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def classifier_names() -> list[str]:
    """Every timm model name a recipe may use."""
    return timm.list_models()


def check_model_name(name: str) -> None:
    """Raise KeyError with a 'did you mean' when `name` is not a timm model."""
    if not timm.is_model(name.split(".")[0]):
        raise KeyError(
            f"unknown classifier model '{name}'.{suggest(name, classifier_names())} "
            "See `timm.list_models()` for the names timm knows."
        )


def create_classifier(spec: ClassifierSpec, num_classes: int) -> nn.Module:
    """A timm model for `spec` with `num_classes` outputs, pretrained if the spec asks for it."""
    check_model_name(spec.model)
    # The augmentation preset may imply model settings (paper: dropout 0.5); model_kwargs overrides them.
    kwargs = dict(num_classes=num_classes, in_chans=spec.in_chans,
                  **{**preset_model_kwargs(spec.augment), **spec.model_kwargs})
    if not spec.pretrained:
        return timm.create_model(spec.model, pretrained=False, **kwargs)
    weights_file = resolve_weights(spec)
    try:
        return timm.create_model(spec.model, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights_file)),
                                 **kwargs)
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        raise WeightsError(
            f"the weights in {weights_file} do not fit classifier '{spec.model}': {exc}. "
            "Check that the file holds weights of this exact architecture (and any model_kwargs that change it)."
        ) from exc


def resolve_weights(spec: ClassifierSpec) -> Path:
    """The local weights file for a pretrained classifier: from `spec.weights`, else the Hugging Face cache."""
    if spec.weights:
        return _weights_from_path(spec)
    return _weights_from_hf_cache(spec)


def _weights_from_path(spec: ClassifierSpec) -> Path:
    """A weights file given directly, or the first known weights file in a given folder."""
    path = Path(spec.weights).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for name in WEIGHT_FILES:
            if (path / name).is_file():
                return path / name
        found = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
        if found:
            return found[0]
        raise WeightsError(
            f"classifier '{spec.model}': the weights folder {path} holds no weights file "
            f"(looked for {', '.join(WEIGHT_FILES)} or any {'/'.join(WEIGHT_SUFFIXES)} file). "
            f"{_how_to_provide(spec.model)}"
        )
    raise WeightsError(
        f"classifier '{spec.model}': the weights path {path} does not exist. {_how_to_provide(spec.model)}"
    )


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment now (HF_HUB_CACHE, HF_HOME, or the default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_id_of(model: str) -> tuple[str, str | None]:
    """The Hugging Face repository of a timm model's default pretrained weights, and its file name override."""
    cfg = timm.models.get_pretrained_cfg(model)
    if cfg is None or not cfg.hf_hub_id:
        raise WeightsError(
            f"classifier '{model}' has no published pretrained weights in timm. "
            "Set `pretrained: false`, or give your own weights file with `weights:`."
        )
    return cfg.hf_hub_id, cfg.hf_hub_filename


def _weights_from_hf_cache(spec: ClassifierSpec) -> Path:
    """The cached weights file of the model's default pretrained tag. Never downloads, online or not: a recipe's
    weights are checked before it is queued, and `xaug weights fetch RECIPE` downloads them (engine/weights.py)."""
    from huggingface_hub import try_to_load_from_cache

    repo_id, filename = hub_id_of(spec.model)
    cache = hf_cache_dir()
    names = (filename,) if filename else WEIGHT_FILES[:2]
    for name in names:
        found = try_to_load_from_cache(repo_id, name, cache_dir=cache)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    raise WeightsError(f"pretrained weights for classifier '{spec.model}' are not available locally: no "
                       f"{' or '.join(names)} of {repo_id} in the Hugging Face cache {cache}, and no `weights:` path "
                       f"was set in the recipe (xaug never downloads while a study runs). "
                       f"{_how_to_provide(spec.model, repo_id)}")


def _how_to_provide(model: str, repo_id: str | None = None) -> str:
    """The fix, spelt out: download on a connected machine, or point `weights:` at a file."""
    repo_id = repo_id or f"timm/{model}"
    return (
        f"To fix: on a machine with internet run `xaug weights fetch RECIPE` (or `huggingface-cli download "
        f"{repo_id}`) and copy the cache folder "
        f"(~/.cache/huggingface/hub/models--{repo_id.replace('/', '--')}) to this machine, or set the classifier's "
        "`weights:` to a local .safetensors/.pth file or folder, or set `pretrained: false`."
    )


def input_stats(model: nn.Module, in_chans: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std that inputs are normalised with (the model's pretrained statistics)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean = list(cfg.get("mean") or (0.5, 0.5, 0.5))
    std = list(cfg.get("std") or (0.5, 0.5, 0.5))
    if in_chans == 1:
        return [sum(mean) / len(mean)], [sum(std) / len(std)]
    return mean[:3], std[:3]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

