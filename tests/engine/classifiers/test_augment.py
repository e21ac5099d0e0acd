"""Augmentation presets: kornia pipelines within their stated ranges, seeded, shape- and dtype-preserving."""

import pytest
import torch

from xaug.engine.classifiers.augment import PRESETS, augment_batch, make_augmentation
from xaug.engine.classifiers.registry import create_classifier
from xaug.engine.recipe.schema import ClassifierSpec


def batch(n=64, size=32):
    """Grey float images in 0..1 with structure (a bright band) so that every operation has something to change."""
    x = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0)) * 0.3
    x[:, :, 10:16, :] += 0.6
    return x


@pytest.mark.parametrize("preset", ["standard", "paper"])
def test_presets_keep_shape_dtype_range_and_are_seeded(preset):
    x = batch()
    aug = make_augmentation(preset)
    torch.manual_seed(7)
    a = augment_batch(x.clone(), aug)
    torch.manual_seed(7)
    b = augment_batch(x.clone(), aug)
    torch.manual_seed(8)
    c = augment_batch(x.clone(), aug)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    changed = (a - x).abs().flatten(1).amax(1) > 1e-3
    assert changed.float().mean() > 0.4  # most images are changed, each differently
    assert make_augmentation("none") is None
    assert set(PRESETS) == {"none", "standard", "paper"}


def test_paper_preset_draws_within_the_stated_ranges():
    aug = make_augmentation("paper")
    affine, clahe, gamma, blur, sharpen = list(aug.children())
    torch.manual_seed(0)
    x = batch(n=400)
    augment_batch(x, aug)
    scale = affine._params["scale"][:, 0]
    assert 0.5 <= scale.min() and scale.max() <= 1.5
    assert scale.min() < 0.6 and scale.max() > 1.4  # really up to +-50%, not a milder range
    assert affine._params["angle"].abs().max() <= 45
    assert 0.15 < affine._params["batch_prob"].mean() < 0.85  # applied to about half of the images
    assert 1.0 <= clahe._params["clip_limit_factor"].min() and clahe._params["clip_limit_factor"].max() <= 4.0
    assert 0.8 <= gamma._params["gamma_factor"].min() and gamma._params["gamma_factor"].max() <= 1.2
    assert 0.1 <= blur._params["sigma"].min() and blur._params["sigma"].max() <= 2.0
    assert 0.0 <= sharpen._params["sharpness"].min() and sharpen._params["sharpness"].max() <= 0.5


def test_standard_preset_is_mild():
    aug = make_augmentation("standard")
    affine = list(aug.children())[0]
    torch.manual_seed(0)
    augment_batch(batch(n=200), aug)
    assert affine._params["angle"].abs().max() <= 7
    assert 0.93 <= affine._params["scale"].min() and affine._params["scale"].max() <= 1.07


def test_paper_preset_brings_dropout_unless_model_kwargs_set_it():
    spec = ClassifierSpec(model="test_efficientnet", augment="paper")
    assert create_classifier(spec, 3).drop_rate == 0.5
    assert create_classifier(spec.model_copy(update={"augment": "standard"}), 3).drop_rate == 0.0
    own = spec.model_copy(update={"model_kwargs": {"drop_rate": 0.2}})
    assert create_classifier(own, 3).drop_rate == 0.2


def test_old_boolean_augment_means_standard_or_none():
    assert ClassifierSpec(model="m", augment=True).augment == "standard"
    assert ClassifierSpec(model="m", augment=False).augment == "none"
    with pytest.raises(ValueError, match="standard"):
        ClassifierSpec(model="m", augment="strong")
