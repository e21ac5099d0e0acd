"""FID/KID, precision/recall, density/coverage and MS-SSIM on sets with known answers (no Inception download)."""

import time

import numpy as np
import pytest
import torch

from xaug.store.errors import WeightsError
from xaug.engine.metrics import quality as q
from xaug.engine.metrics.features import (ClassifierFeatures, FeatureSpace, PixelFeatures, inception_space,
                                          inception_weights_path, pixel_space)


def _blobs(n, seed, shift=0.0, size=32):
    """Grey images of a bright disc at a random place: a smooth 'distribution' of images; shift brightens them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n, size, size), dtype=np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(8, size - 8, 2)
        r = rng.uniform(4, 8)
        img = 60 + 120 * ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) + rng.normal(0, 8, (size, size)) + shift
        out[i] = np.clip(img, 0, 255)
    return out


@pytest.fixture(scope="module")
def feats():
    space = pixel_space()
    real = space.embed(_blobs(120, 0))
    same = space.embed(_blobs(120, 1))
    shifted = space.embed(_blobs(120, 2, shift=60))
    return real, same, shifted


def test_fid_of_identical_sets_is_zero_and_shifted_is_larger(feats):
    real, same, shifted = feats
    assert q.fid(real, real) == pytest.approx(0.0, abs=1e-6)
    fid_same, fid_shift = q.fid(real, same), q.fid(real, shifted)
    assert fid_shift > 10 * fid_same
    assert fid_shift > 0.1


def test_kid_of_identical_sets_is_about_zero_and_shifted_is_larger(feats):
    real, same, shifted = feats
    kid_self, _, size = q.kid(real, real, subset_size=50, subsets=30)
    kid_same, _, _ = q.kid(real, same, 50, subsets=30)
    kid_shift, kid_std, _ = q.kid(real, shifted, 50, subsets=30)
    # KID is an unbiased MMD estimate over random subsets: about 0 (either sign) for the same distribution
    assert size == 50 and kid_std >= 0
    assert abs(kid_self) < 0.02 * kid_shift and abs(kid_same) < 0.05 * kid_shift


def test_kid_subset_is_clamped_to_the_smaller_set(feats):
    real, same, _ = feats
    _, _, size = q.kid(real[:20], same, subset_size=50, subsets=5)
    assert size == 20


def test_precision_recall_density_coverage_sanity(feats):
    real, same, shifted = feats
    p, r = q.precision_recall(real, same)
    d, c = q.density_coverage(real, same)
    assert p > 0.7 and r > 0.7 and 0.6 < d < 1.5 and c > 0.7
    p2, r2 = q.precision_recall(real, shifted)
    d2, c2 = q.density_coverage(real, shifted)
    assert p2 < 0.2 and r2 < 0.2 and d2 < 0.2 and c2 < 0.2


def test_mode_collapse_keeps_precision_but_loses_recall_and_coverage(feats):
    real, _, _ = feats
    collapsed = real[:3].repeat(40, 1) + 1e-3 * torch.randn(120, real.shape[1], dtype=torch.float64)
    p, r = q.precision_recall(real, collapsed)
    _, c = q.density_coverage(real, collapsed)
    assert p > 0.9 and r < 0.2 and c < 0.2


def test_precision_recall_on_a_hand_computed_example():
    real = torch.tensor([[0.0], [1.0], [2.0], [10.0]], dtype=torch.float64)
    fake = torch.tensor([[0.5], [5.0]], dtype=torch.float64)
    # k=1 radii: real 0->1, 1->1, 2->1, 10->8 ; fake 0.5->4.5, 5->4.5
    p, r = q.precision_recall(real, fake, k=1)
    assert p == pytest.approx(1.0)  # 0.5 in ball(0,1); 5 in ball(10, 8)
    assert r == pytest.approx(0.75)  # 0, 1, 2 lie within 4.5 of a fake; 10 is 5 away from 5
    d, c = q.density_coverage(real, fake, k=1)
    # 0.5 is in balls of 0 and 1 (2 balls), 5 in ball of 10 (|5-10| = 5 <= 8): 3 / (1 * 2)
    assert d == pytest.approx(1.5)
    assert c == pytest.approx(3 / 4)  # balls of 0, 1 and 10 hold a fake; 2's ball (radius 1) holds none


def test_feature_metrics_record_n_with_every_value(feats):
    real, same, _ = feats
    values = q.feature_metrics(real[:50], same[:40], class_name="viral", features="pixels", kid_subset_size=30)
    assert {v.metric for v in values} == {"fid", "kid", "precision", "recall", "density", "coverage"}
    assert all(v.n_real == 50 and v.n_fake == 40 and v.class_name == "viral" for v in values)


@pytest.mark.parametrize("side", [16, 32, 64, 224])
def test_ms_ssim_settings_work_for_small_images(side):
    kernel, sigma, betas = q.ms_ssim_settings(side)
    assert sum(betas) == pytest.approx(1.0)
    images = _blobs(6, 3, size=side)
    mean, std, pairs = q.ms_ssim_diversity(images, n_pairs=6)
    assert 0 <= mean <= 1 and pairs == 6


def test_ms_ssim_settings_at_64px_use_fewer_scales():
    kernel, _, betas = q.ms_ssim_settings(64)
    assert len(betas) < 5 and kernel >= 7
    assert len(q.ms_ssim_settings(224)[2]) == 5


def test_ms_ssim_diversity_is_one_for_copies_and_lower_for_varied_images():
    varied = _blobs(20, 4, size=64)
    copies = np.repeat(varied[:1], 20, axis=0)
    assert q.ms_ssim_diversity(copies, 30)[0] == pytest.approx(1.0, abs=1e-4)
    assert q.ms_ssim_diversity(varied, 30)[0] < 0.9


def test_take_fixed_is_deterministic_and_bounded():
    images = np.arange(50)[:, None, None].repeat(4, 1).repeat(4, 2).astype(np.uint8)
    a, b = q.take_fixed(images, 10, seed=0), q.take_fixed(images, 10, seed=0)
    assert len(a) == 10 and np.array_equal(a, b)
    assert len(q.take_fixed(images, 100, seed=0)) == 50


def test_missing_inception_weights_fail_fast_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # follow TORCH_HOME; restored after the test
    start = time.monotonic()
    with pytest.raises(WeightsError, match="inception_weights"):
        inception_space(None)
    with pytest.raises(WeightsError, match="does not exist"):
        inception_weights_path(tmp_path / "nope.pth")
    assert time.monotonic() - start < 2.0


def test_pixel_features_are_deterministic_and_shaped():
    module = PixelFeatures(side=8, dim=16, seed=3)
    x = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    assert module(x).shape == (4, 16)
    assert torch.equal(module(x), PixelFeatures(side=8, dim=16, seed=3)(x))


def test_classifier_features_take_the_penultimate_layer():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=3, in_chans=1)
    space = FeatureSpace("classifier", ClassifierFeatures(model, image_size=32, in_chans=1))
    out = space.embed(np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8))
    assert out.shape == (5, model.num_features) and out.dtype == torch.float64
    assert not model.training


def test_inception_space_loads_a_local_weights_file_and_embeds(tmp_path, monkeypatch):
    """Random weights saved in torch-fidelity's format stand in for the real file: the path is used, no download."""
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download Inception weights")

    with monkeypatch.context() as patch:
        patch.setattr(tfi, "load_state_dict_from_url", lambda *a, **k: None)
        patch.setattr(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        random_net = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    weights = tmp_path / "inception.pth"
    torch.save(random_net.state_dict(), weights)
    monkeypatch.setattr(tfi, "load_state_dict_from_url", no_download)
    space = inception_space(weights)
    out = space.embed(np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8))
    assert space.name == "inception" and out.shape == (3, 2048) and torch.isfinite(out).all()
