"""The quickstart GAN draws ribs within its budget, and because of its high-frequency discriminator input.

Trains the GAN exactly as `recipes/quickstart.yaml` sets it (1400 steps) on a fold-sized set of phantom images,
once as shipped and once with `d_high_pass: 0`, and measures rib bands: the spread, down the lung fields, of each
row's mean high-frequency content. Horizontal rib stripes make row means alternate; smooth lungs keep them flat.
About two minutes of one core.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaug.engine.data.phantom import phantom_records, render_source
from xaug.engine.data.resize import resize_images
from xaug.engine.generators.base import TrainImages
from xaug.engine.generators.gan_config import GanConfig
from xaug.engine.generators.gan_networks import high_pass
from xaug.engine.generators.registry import get_generator
from xaug.engine.recipe.loader import load_recipe

LUNG_ROWS = slice(18, 42)
"""Rows of a 64-px phantom that lie inside both lung fields (between apices and diaphragm)."""
LUNG_COLUMNS = ((17, 25), (39, 47))
"""Columns inside the right and the left lung of a 64-px phantom (clear of the mediastinum and the chest wall)."""


def rib_bands(images: np.ndarray) -> float:
    """Mean over images and lungs of the standard deviation, down the lung, of each row's mean high frequencies."""
    x = torch.from_numpy(images).float().div(127.5).sub(1).unsqueeze(1)
    detail = high_pass(x)[:, 0, LUNG_ROWS]
    return float(np.mean([detail[:, :, a:b].mean(dim=2).std(dim=1).mean().item() for a, b in LUNG_COLUMNS]))


@pytest.fixture(scope="module")
def quickstart_gan():
    """The quickstart recipe's GAN params and ~600 of its phantom images at 64 px (a fold's training split)."""
    recipe = load_recipe("recipes/quickstart.yaml").recipe
    params = next(g for g in recipe.generators if g.model == "gan").params
    records = phantom_records(recipe.dataset.phantom)
    chosen = np.random.default_rng(0).permutation(len(records.records))[:610]
    sources = [records.records[i] for i in chosen]
    images = resize_images(np.stack([render_source(recipe.dataset.phantom, r.source) for r in sources]),
                           recipe.dataset.image_size)
    labels = np.array([records.classes.index(r.label) for r in sources])
    return params, TrainImages(images, labels, list(records.classes))


def _train_and_sample(params: dict, data: TrainImages, work_dir, hooks) -> np.ndarray:
    """Train the GAN as a train_generator job does (the generator's own train, one thread), then sample 8 images
    of each class as the sample job does."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gan = get_generator("gan").factory()
        outcome = gan.train(GanConfig(**params), False, data, work_dir, hooks, "cpu", seed=0)
        return np.concatenate([gan.sample(outcome.checkpoint, c, 8, seed=0, device="cpu") for c in data.classes])
    finally:
        torch.set_num_threads(threads)


def test_quickstart_gan_draws_ribs_because_its_discriminator_sees_high_frequencies(quickstart_gan, tmp_path,
                                                                                     recording_hooks):
    params, data = quickstart_gan
    assert params["d_high_pass"] > 0 and params["steps"] <= 1400  # the shipped budget, with the option on
    real = rib_bands(data.images[:40])
    shipped = rib_bands(_train_and_sample(params, data, tmp_path / "shipped", recording_hooks()))
    without = rib_bands(_train_and_sample({**params, "d_high_pass": 0.0}, data, tmp_path / "without",
                                          recording_hooks()))
    print(f"rib bands: real {real:.4f}, quickstart GAN {shipped:.4f}, without d_high_pass {without:.4f}")
    assert shipped > 0.7 * real, "the quickstart GAN's lungs are smooth: no ribs"
    assert without < 0.7 * real < shipped  # the measure tells smooth lungs from ribbed ones
