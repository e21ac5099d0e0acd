"""One DDPM trained by 2 accelerate (DDP, gloo) processes on the CPU follows the 1-process run with twice the
per-process batch, and resumes from its checkpoint onto the uninterrupted 2-process run.

Tolerance: both runs draw the same global batches, timesteps and noise from the same seeded generator, the U-Net
has no batch statistics (GroupNorm), and DDP averages the two halves' gradients, so the runs are the same
computation up to the order of floating-point sums (one batch of 8 against two of 4, then an all-reduce): float32
rounding, about 1e-7 relative per step. Adam divides by the root of the second moment, which can amplify such
differences on near-zero gradients over steps, so losses and weights are compared at rel 1e-4 / abs 1e-5 over 4
steps; a real mismatch (another batch, other noise, a process training on the whole batch) differs by >1e-2.
The U-Net normalises groups of 4 and 8 channels: with one channel per group, a bias or time embedding in front of
the norm has a gradient that is zero in exact arithmetic, and Adam's first step turns the sign of its rounding
noise into a full +-lr step in either run (a property of Adam, not of DDP).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xaug.engine.checkpoint import load_checkpoint
from xaug.store.errors import DataError
from xaug.engine.generators.base import TrainImages
from xaug.engine.generators.ddpm import DdpmConfig
from xaug.engine.generators.distributed import launch_dir, per_process_batch, train_in_processes
from xaug.engine.generators.registry import get_generator

pytestmark = pytest.mark.timeout(240)

TINY_16PX = dict(resolution=16, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=2, attention=False,
                 batch_size=8, steps=4, lr=2e-3, lr_warmup_steps=0, cond_drop_prob=0.5, flip=True, grid_every=1000,
                 grid_per_class=1, checkpoint_every=1000, sample_steps=2, num_train_timesteps=50, ema_decay=0.9)
"""A class-conditional 16 px DDPM with label dropout and flips (every random draw of a step is exercised)."""
RTOL, ATOL = 1e-4, 1e-5


class Recorder:
    """Hooks that record each step's losses and grids; with stop=True they ask to stop from the start (the run
    then checkpoints after its first step)."""

    def __init__(self, stop: bool = False):
        self.stop, self.steps, self.losses, self.grids = stop, [], [], []

    def progress(self, step, total, losses):
        self.steps.append(step)
        self.losses.append(dict(losses))

    def grid(self, step, images, class_names):
        self.grids.append((step, images, list(class_names)))

    def should_stop(self):
        return self.stop


def _data() -> TrainImages:
    """16 random 20x20 grey images of two classes with different brightness."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 8)
    images = rng.integers(0, 120, (16, 20, 20)).astype(np.uint8) + (labels * 120).astype(np.uint8)[:, None, None]
    return TrainImages(images=images, labels=labels, classes=["healthy", "viral"])


def _state(work_dir):
    saved = load_checkpoint(work_dir / "all" / "checkpoints")
    return {k: v for k, v in saved.tensors().items() if k.startswith(("unet.", "ema."))}, saved.step


def _assert_same_state(a, b):
    (ta, step_a), (tb, step_b) = a, b
    assert step_a == step_b and ta.keys() == tb.keys()
    for key in ta:
        torch.testing.assert_close(ta[key], tb[key], rtol=RTOL, atol=ATOL, msg=key)


def _assert_same_losses(a, b):
    assert len(a) == len(b)
    for la, lb in zip(a, b):
        assert la["loss"] == pytest.approx(lb["loss"], rel=RTOL, abs=ATOL)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """An uninterrupted 2-process run (global batch 8: 4 per process) and its recorded losses."""
    work = tmp_path_factory.mktemp("ddp") / "two"
    hooks = Recorder()
    out = train_in_processes("ddpm", DdpmConfig(**TINY_16PX), False, _data(), work, hooks, "cpu", seed=3,
                             processes=2)
    return work, hooks, out


def test_two_processes_follow_one_process_with_the_whole_batch(tmp_path, two_process_run):
    work, two, out = two_process_run
    assert out.finished and out.step == 4 and two.steps == [1, 2, 3, 4]
    assert len(two.grids) == 1 and two.grids[0][0] == 4  # rank 0's grid reached the parent's hooks
    one = Recorder()
    get_generator("ddpm").factory().train(DdpmConfig(**TINY_16PX), False, _data(), tmp_path / "one", one, "cpu",
                                          seed=3)
    _assert_same_losses(two.losses, one.losses)
    _assert_same_state(_state(work), _state(tmp_path / "one"))
    # The comparison can fail: another seed (other batches and noise) is far outside the tolerance.
    other = Recorder()
    get_generator("ddpm").factory().train(DdpmConfig(**TINY_16PX), False, _data(), tmp_path / "other", other,
                                          "cpu", seed=4)
    assert max(abs(a["loss"] - b["loss"]) for a, b in zip(two.losses, other.losses)) > 1e-2


def test_two_processes_resume_onto_the_uninterrupted_run(tmp_path, two_process_run):
    work, two, _ = two_process_run
    params = DdpmConfig(**TINY_16PX)
    stopped = Recorder(stop=True)
    out = train_in_processes("ddpm", params, False, _data(), tmp_path / "b", stopped, "cpu", seed=3, processes=2)
    assert not out.finished and out.step == stopped.steps[-1] < params.steps
    assert _state(tmp_path / "b")[1] == out.step
    rest = Recorder()
    out = train_in_processes("ddpm", params, False, _data(), tmp_path / "b", rest, "cpu", seed=3, processes=2)
    assert out.finished and rest.steps[0] == stopped.steps[-1] + 1 and rest.steps[-1] == params.steps
    _assert_same_losses(rest.losses, two.losses[-len(rest.losses):])
    _assert_same_state(_state(tmp_path / "b"), _state(work))
    assert not launch_dir(tmp_path / "b").exists()  # request, images and events are gone with the run


def test_batch_must_split_evenly_over_processes():
    assert per_process_batch(8, 2) == 4
    with pytest.raises(DataError, match="not divisible by the 3 training processes"):
        per_process_batch(8, 3)
