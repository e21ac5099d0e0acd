"""The memorisation check flags planted near-copies of training images and not fresh real images."""

import numpy as np
import pytest
import torch
from PIL import Image

from xaug.engine.metrics.features import pixel_space
from xaug.engine.metrics.memorisation import (check_memorisation, nearest_neighbours, pixel_vectors,
                                              save_pair_png)


def _population(n, seed, size=32):
    """Random smooth grey images (low-frequency noise upsampled): each one distinct."""
    rng = np.random.default_rng(seed)
    coarse = torch.as_tensor(rng.uniform(0, 255, (n, 1, 6, 6)), dtype=torch.float32)
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    noise = torch.as_tensor(rng.normal(0, 6, (n, 1, size, size)), dtype=torch.float32)
    return (fine + noise).clamp(0, 255).to(torch.uint8)[:, 0].numpy()


@pytest.fixture(scope="module")
def sets():
    train = _population(200, 0)
    heldout = _population(100, 1)
    fresh = _population(60, 2)
    rng = np.random.default_rng(3)
    copied = rng.choice(200, 6, replace=False)
    copies = np.clip(train[copied].astype(int) + rng.integers(-3, 4, train[copied].shape), 0, 255).astype(np.uint8)
    synthetic = np.concatenate([fresh[:54], copies])  # indices 54..59 are planted near-copies
    return train, heldout, synthetic, copied


@pytest.mark.parametrize("space", ["pixels32", "features"])
def test_planted_copies_are_flagged_and_fresh_real_images_are_not(sets, space):
    train, heldout, synthetic, copied = sets
    embed = pixel_vectors if space == "pixels32" else pixel_space(side=16, dim=64).embed
    result = check_memorisation(embed(synthetic), embed(train), embed(heldout), quantile=1.0, n_closest=6)
    flagged = set(result.flagged.tolist())
    assert set(range(54, 60)) <= flagged  # every planted copy
    assert len(flagged - set(range(54, 60))) <= 2  # about 1% of fresh images may fall below the 1st percentile
    # the closest pairs are the planted copies, each paired with the image it was copied from
    assert {p.synthetic_index for p in result.closest} == set(range(54, 60))
    for pair in result.closest:
        assert pair.train_index == copied[pair.synthetic_index - 54]
    assert [p.distance for p in result.closest] == sorted(p.distance for p in result.closest)


def test_held_out_real_images_are_not_flagged(sets):
    train, heldout, _, _ = sets
    other_real = _population(100, 7)
    result = check_memorisation(pixel_vectors(other_real), pixel_vectors(train), pixel_vectors(heldout))
    assert result.flagged_fraction <= 0.04
    assert 0.8 < result.distance_ratio < 1.25


def test_a_generator_that_copies_has_a_small_distance_ratio(sets):
    train, heldout, _, _ = sets
    result = check_memorisation(pixel_vectors(train[:50]), pixel_vectors(train), pixel_vectors(heldout))
    assert result.flagged_fraction == 1.0 and result.distance_ratio < 0.01


def test_nearest_neighbours_matches_brute_force():
    rng = np.random.default_rng(0)
    q, r = torch.as_tensor(rng.normal(size=(7, 3))), torch.as_tensor(rng.normal(size=(11, 3)))
    dist, idx = nearest_neighbours(q, r, chunk=3)
    brute = np.linalg.norm(q.numpy()[:, None] - r.numpy()[None], axis=2)
    assert np.array_equal(idx, brute.argmin(1)) and np.allclose(dist, brute.min(1))


def test_pair_png_is_side_by_side(tmp_path):
    a = np.zeros((16, 16), np.uint8)
    b = np.full((16, 16), 200, np.uint8)
    path = save_pair_png(a, b, tmp_path / "p" / "00.png", gap=4)
    img = np.asarray(Image.open(path))
    assert img.shape == (16, 36) and img[0, 0] == 0 and img[0, -1] == 200 and img[0, 17] == 255
