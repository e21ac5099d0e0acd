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

from xaug.engine.data.resize import resize_images
from xaug.engine.data.phantom import phantom_records, render_source
from xaug.engine.generators.gan_config import GanConfig
from xaug.engine.generators.gan_networks import high_pass
from xaug.engine.generators.gan_trainer import GanTrainer
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
    """The quickstart recipe's GAN params, its phantom, and ~600 of its images at 64 px (a fold's training split)."""
    recipe = load_recipe("recipes/quickstart.yaml").recipe
    params = next(g for g in recipe.generators if g.model == "gan").params
    records = phantom_records(recipe.dataset.phantom)
    chosen = np.random.default_rng(0).permutation(len(records.records))[:610]
    sources = [records.records[i] for i in chosen]
    images = resize_images(np.stack([render_source(recipe.dataset.phantom, r.source) for r in sources]),
                           recipe.dataset.image_size)
    labels = np.array([records.classes.index(r.label) for r in sources])
    return params, images, labels, len(records.classes)


def _train_and_sample(params: dict, images: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Train a GAN with these params on the images, one thread, then draw 8 EMA samples per class."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = GanConfig(**params)
        trainer = GanTrainer(cfg, n_classes, "cpu", seed=0)
        real = torch.from_numpy(images).float().div(127.5).sub(1).unsqueeze(1)
        y = torch.from_numpy(labels)
        for _ in range(cfg.steps):
            idx, fake_idx = torch.randint(len(real), (cfg.batch_size,)), torch.randint(len(real), (cfg.batch_size,))
            trainer.train_step(real[idx], y[idx], y[fake_idx])
        z = torch.randn(8 * n_classes, cfg.z_dim, generator=torch.Generator().manual_seed(1234))
        out = trainer.generate(z, torch.arange(n_classes).repeat_interleave(8))
    finally:
        torch.set_num_threads(threads)
    return ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()[:, 0]


def test_quickstart_gan_draws_ribs_because_its_discriminator_sees_high_frequencies(quickstart_gan):
    params, images, labels, n_classes = quickstart_gan
    assert params["d_high_pass"] > 0 and params["steps"] <= 1400  # the shipped budget, with the option on
    real = rib_bands(images[:40])
    shipped = rib_bands(_train_and_sample(params, images, labels, n_classes))
    without = rib_bands(_train_and_sample({**params, "d_high_pass": 0.0}, images, labels, n_classes))
    print(f"rib bands: real {real:.4f}, quickstart GAN {shipped:.4f}, without d_high_pass {without:.4f}")
    assert shipped > 0.7 * real, "the quickstart GAN's lungs are smooth: no ribs"
    assert without < 0.7 * real < shipped  # the measure tells smooth lungs from ribbed ones
