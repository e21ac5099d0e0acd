"""The one training driver: cadence of progress, grids and checkpoints, stop and resume, units in turn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xaug.engine.checkpoint import load_checkpoint
from xaug.engine.generators import distributed as dist
from xaug.engine.generators.driver import Unit, train_steps, train_units


@dataclass(frozen=True)
class Cadence:
    steps: int = 7
    grid_every: int = 3
    checkpoint_every: int = 2


class CountingModel:
    """A 'model' whose weight counts its steps; records when its state is taken (i.e. checkpointed)."""

    def __init__(self):
        self.w, self.saved_at = 0, []
        self.acc = dist.accelerator_for("cpu")

    def train_step(self):
        self.w += 1
        return {"loss": float(self.w)}

    def sample_grid(self):
        return np.full((1, 2, 2), self.w, np.uint8), ["a"]

    def state(self):
        self.saved_at.append(self.w)
        return {"w": torch.tensor([self.w])}, {"w": self.w}

    def export(self, folder):
        (folder / "export.txt").write_text(str(self.w))

    def load(self, saved):
        self.w = int(saved.tensors()["w"][0])
        assert saved.scalars["w"] == self.w == saved.step


def test_cadence_of_progress_grids_and_checkpoints(tmp_path, recording_hooks):
    model, hooks = CountingModel(), recording_hooks()
    step = train_steps(model, Cadence(), tmp_path, hooks, offset=10, total=30)
    assert step == 7 and hooks.steps == [11, 12, 13, 14, 15, 16, 17] and hooks.totals == {30}
    assert [g[0] for g in hooks.grids] == [13, 16, 17] and hooks.grids[-1][1][0, 0, 0] == 7
    assert model.saved_at == [2, 4, 6, 7]  # every checkpoint_every steps, and the final state
    saved = load_checkpoint(tmp_path)
    assert saved.step == 7 and (saved.path / "export.txt").read_text() == "7"
    again = CountingModel()
    assert train_steps(again, Cadence(), tmp_path, recording_hooks()) == 7
    assert again.saved_at == [] and again.w == 7  # finished: resumed, nothing trained or written


def test_stop_checkpoints_once_and_resume_continues(tmp_path, recording_hooks):
    first = CountingModel()
    assert train_steps(first, Cadence(), tmp_path, recording_hooks(stop_after=3)) == 3
    assert first.saved_at == [2, 3]
    model = CountingModel()
    done = []
    hooks = recording_hooks()
    step = train_steps(model, Cadence(), tmp_path, hooks, finish=lambda: done.append(1))
    assert step == 7 and hooks.steps == [4, 5, 6, 7] and [h["loss"] for h in hooks.losses] == [4.0, 5.0, 6.0, 7.0]
    assert done == [1] and model.saved_at == [4, 6]  # finish replaces the final checkpoint
    stopped_on_a_save = CountingModel()
    train_steps(stopped_on_a_save, Cadence(), tmp_path / "b", recording_hooks(stop_after=2))
    assert stopped_on_a_save.saved_at == [2]  # not saved twice


def test_units_train_in_turn_and_stop_between_units(recording_hooks):
    calls = []

    def train_unit(unit, index, offset, total):
        calls.append((unit.name, index, offset, total))
        return 5

    units = [Unit("a", ["a"]), Unit("b", ["b"])]
    out = train_units(units, 5, "ckpt", recording_hooks(), "cpu", train_unit)
    assert out.finished and out.step == 10 and calls == [("a", 0, 0, 10), ("b", 1, 5, 10)]
    stopping = recording_hooks(stop_after=5)
    stopping.steps.append(5)
    calls.clear()
    out = train_units(units, 5, "ckpt", stopping, "cpu", train_unit)
    assert not out.finished and out.step == 5 and calls == [("a", 0, 0, 10)]
