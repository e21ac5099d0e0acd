"""Batch plans: one step budget for every arm, full batches, seeded and resumable, and a fixed real:added ratio."""

import numpy as np
import pytest
import torch

from xaug.engine.classifiers import train as train_mod
from xaug.engine.classifiers.batches import BatchPlan, step_budget, steps_per_epoch, validation_interval
from xaug.engine.classifiers.train import TrainData, train_classifier
from xaug.engine.recipe.schema import ClassifierSpec

from classifier_helpers import CLASSES, make_images


def test_budget_and_validation_interval_depend_on_the_real_split_only():
    spec = ClassifierSpec(model="test_efficientnet", epochs=3, batch_size=8)
    assert steps_per_epoch(24, 8) == 3 and steps_per_epoch(25, 8) == 4 and steps_per_epoch(3, 8) == 1
    assert step_budget(spec, 24) == 9 and validation_interval(spec, 24) == 3
    assert validation_interval(spec.model_copy(update={"val_every_steps": 5}), 24) == 5


def test_pool_batches_are_full_seeded_and_cover_the_pool():
    plan = BatchPlan(n_real=20, n_added=12, batch_size=8, seed=3)
    first_pass = torch.cat([plan.indices(step) for step in range(4)])  # 32 positions = one shuffle of the pool
    assert sorted(first_pass.tolist()) == list(range(32))
    assert all(len(plan.indices(step)) == 8 for step in range(50))
    # the batch of a step depends on (seed, step) only: a resumed run draws the same, another seed does not
    again = BatchPlan(n_real=20, n_added=12, batch_size=8, seed=3)
    assert torch.equal(again.indices(17), plan.indices(17))
    assert not torch.equal(BatchPlan(20, 12, 8, seed=4).indices(17), plan.indices(17))
    # a pool smaller than a batch still gives full batches (no batch of one for BatchNorm)
    assert len(BatchPlan(n_real=3, n_added=0, batch_size=8, seed=0).indices(5)) == 8


@pytest.mark.parametrize(("fraction", "added"), [(0.5, 4), (0.25, 2), (0.01, 1), (0.99, 7)])
def test_synthetic_fraction_fixes_the_ratio_of_every_batch(fraction, added):
    plan = BatchPlan(n_real=24, n_added=300, batch_size=8, seed=0, synthetic_fraction=fraction)
    assert plan.added_per_batch == added
    steps = [plan.indices(step) for step in range(60)]
    assert all(int((b >= 24).sum()) == added and len(b) == 8 for b in steps)
    real = torch.cat([b[b < 24] for b in steps])
    counts = np.bincount(real.numpy(), minlength=24)
    assert counts.max() - counts.min() <= 1  # the real images are cycled through evenly, pass after pass
    # with no added images (the baseline) the ratio mode draws exactly the pool mode's batches
    baseline = BatchPlan(n_real=24, n_added=0, batch_size=8, seed=0, synthetic_fraction=fraction)
    assert torch.equal(baseline.indices(7), BatchPlan(24, 0, 8, seed=0).indices(7))


def test_training_batches_hold_the_fixed_share_of_added_images(tmp_path, monkeypatch):
    """End to end through train_classifier: added images are marked (all white), real ones never are."""
    real_x, real_y = make_images(24, 1)
    real_x = np.minimum(real_x, 250)
    added_x = np.full((40, 32, 32), 255, dtype=np.uint8)
    added_y = np.arange(40) % len(CLASSES)
    data = TrainData(real_x, real_y, *make_images(9, 2), added_x, added_y)
    seen = []

    def spy(images, *args):
        seen.append(int((images.flatten(1).min(1).values == 255).sum()))
        return real_training_batch(images, *args)

    real_training_batch = train_mod.training_batch
    monkeypatch.setattr(train_mod, "training_batch", spy)
    spec = ClassifierSpec(model="test_efficientnet", epochs=2, batch_size=8, lr=3e-3, synthetic_fraction=0.25)
    out = train_classifier(spec, CLASSES, data, tmp_path, seed=0)
    assert out.finished and out.step == 6 == len(seen)  # the baseline's budget: 2 epochs x 3 steps
    assert seen == [2] * 6
    pooled = train_classifier(spec.model_copy(update={"synthetic_fraction": None}), CLASSES, data,
                              tmp_path / "pool", seed=0)
    assert pooled.step == 6 and sum(seen[6:]) != 12  # the pool mode draws in proportion (40/64), not 2 per batch


def test_synthetic_fraction_needs_room_for_both_kinds():
    with pytest.raises(ValueError, match="batch_size >= 2"):
        ClassifierSpec(model="test_efficientnet", batch_size=1, synthetic_fraction=0.5)
