"""The training loop on arrays: curves through the callbacks, best-by-validation checkpoint, early stop and exact
resume, and clear errors on unusable data."""

import numpy as np
import pytest
from safetensors.torch import load_file

from xaug.engine.classifiers import train as train_mod
from xaug.engine.checkpoint import load_checkpoint
from xaug.engine.classifiers.checkpoint import BEST, LAST, read_meta
from xaug.engine.classifiers.train import TrainCallbacks, TrainData, train_classifier
from xaug.store.errors import DataError

from classifier_helpers import CLASSES, make_images


class Recorder(TrainCallbacks):
    """Keeps every curve point; asks to stop once `stop_at_step` steps are done."""

    def __init__(self, stop_at_step=None):
        self.points, self.progress_calls, self.starts = {}, [], []
        self.stop_at_step = stop_at_step
        self.step = 0

    def metrics(self, step, values):
        self.step = step
        for name, value in values.items():
            self.points.setdefault(name, {})[step] = value

    def progress(self, done, total):
        self.progress_calls.append((done, total))

    def should_stop(self):
        return self.stop_at_step is not None and self.step >= self.stop_at_step

    def starting_at(self, step):
        self.starts.append(step)


@pytest.fixture
def data():
    tx, ty = make_images(24, 1)
    vx, vy = make_images(9, 2)
    return TrainData(tx, ty, vx, vy)


def test_best_checkpoint_is_the_lowest_validation_loss(tmp_path, data, tiny_spec, monkeypatch):
    scripted = iter([0.9, 0.5, 0.7])  # epoch 2 is the best, epoch 3 is not
    monkeypatch.setattr(train_mod, "validate", lambda *a, **k: (next(scripted), 0.5))
    spec = tiny_spec.model_copy(update={"epochs": 3, "batch_size": 12})
    # stop right after epoch 2 to capture its weights, then resume to the end
    first = train_classifier(spec, CLASSES, data, tmp_path, seed=0, callbacks=Recorder(stop_at_step=4))
    assert (first.finished, first.step, first.best_step) == (False, 4, 4)
    epoch2 = load_checkpoint(tmp_path / LAST).tensors(prefix="model")
    rec = Recorder()
    done = train_classifier(spec, CLASSES, data, tmp_path, seed=0, callbacks=rec)
    assert (done.finished, done.step, done.total_steps) == (True, 6, 6)
    assert rec.starts == [4]
    assert (done.best_step, done.best_val_loss) == (4, 0.5)
    best = load_file(str(tmp_path / BEST))
    final = load_checkpoint(tmp_path / LAST).tensors(prefix="model")
    changed = 0
    for name, tensor in best.items():
        np.testing.assert_array_equal(tensor.numpy(), epoch2[name].numpy())
        changed += not np.array_equal(tensor.numpy(), final[name].numpy())
    assert changed > 0, "epoch 3 should have moved the weights away from the best ones"
    meta = read_meta(tmp_path / BEST)
    assert (meta["step"], meta["epoch"], meta["val_loss"], meta["classes"], meta["image_size"]) == (4, 2, 0.5, CLASSES,
                                                                                                  32)


def test_curves_progress_and_lr_schedule(tmp_path, data, tiny_spec):
    rec = Recorder()
    spec = tiny_spec.model_copy(update={"epochs": 1, "batch_size": 12})
    out = train_classifier(spec, CLASSES, data, tmp_path, seed=3, callbacks=rec)
    assert (out.finished, out.step, out.best_step) == (True, 2, 2)
    assert sorted(rec.points["train_loss"]) == [1, 2]
    assert all(np.isfinite(v) and v > 0 for v in rec.points["train_loss"].values())
    # cosine over 2 steps: full lr at step 1, half of it at step 2
    assert rec.points["lr"] == pytest.approx({1: spec.lr, 2: spec.lr / 2})
    assert list(rec.points["val_loss"]) == [2] and 0 <= rec.points["val_accuracy"][2] <= 1
    assert rec.progress_calls[-1] == (2, 2)
    assert rec.starts == [0]


def test_three_channel_input_without_augmentation_trains(tmp_path, data, tiny_spec):
    spec = tiny_spec.model_copy(update={"epochs": 1, "batch_size": 24, "in_chans": 3, "augment": "none",
                                        "weight_decay": 0.01})
    out = train_classifier(spec, CLASSES, data, tmp_path, seed=0)
    assert out.finished and out.step == 1
    assert read_meta(tmp_path / BEST)["in_chans"] == 3


def test_unusable_data_is_a_data_error(tmp_path, data, tiny_spec):
    empty = TrainData(data.train_images, data.train_labels, data.val_images[:0], data.val_labels[:0])
    with pytest.raises(DataError, match="validation split is empty"):
        train_classifier(tiny_spec, CLASSES, empty, tmp_path, seed=0)
    bad = TrainData(data.train_images, data.train_labels + 5, data.val_images, data.val_labels)
    with pytest.raises(DataError, match="labels outside"):
        train_classifier(tiny_spec, CLASSES, bad, tmp_path, seed=0)


def test_class_weights_make_every_class_count_the_same():
    from xaug.engine.classifiers.train import class_weights

    labels = np.array([0] * 6 + [1] * 2 + [2] * 4)
    w = class_weights(labels, 4).numpy()
    counts = np.bincount(labels, minlength=4)
    np.testing.assert_allclose(w[:3] * counts[:3], [3.0, 3.0, 3.0])  # N / C = 12 / 4 per class
    assert w[3] == 0.0
