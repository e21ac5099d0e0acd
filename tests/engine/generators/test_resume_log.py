"""A generator resumed after a killed checkpoint write: it continues from the last complete checkpoint, says so in
the worker log (stdout), and ends where an uninterrupted run ends."""

from __future__ import annotations

import shutil

import pytest
from xaug.engine import checkpoint as ckpt
from xaug.engine.generators.gan import GanConfig
from xaug.engine.generators.registry import get_generator


def test_gan_resumes_from_the_last_complete_checkpoint_past_a_killed_write(tmp_path, tiny_data, tiny_gan_params,
                                                                            recording_hooks, capsys):
    gan = get_generator("gan").factory
    params = GanConfig(**{**tiny_gan_params, "steps": 4})
    straight = recording_hooks()
    gan().train(params, False, tiny_data, tmp_path / "a", straight, "cpu", seed=1)
    assert "resumed from checkpoint" not in capsys.readouterr().out

    first = recording_hooks(stop_after=2)
    gan().train(params, False, tiny_data, tmp_path / "b", first, "cpu", seed=1)
    root = tmp_path / "b" / "all" / ckpt.CHECKPOINTS
    saved = ckpt.load_checkpoint(root)
    assert saved.step == 2
    # What a save killed half-way leaves: a temporary folder with a truncated tensor file, of a later step.
    killed = root / f"step-000000003.tmp-{99999}"
    shutil.copytree(saved.path, killed)
    data = (killed / ckpt.TENSORS).read_bytes()
    (killed / ckpt.TENSORS).write_bytes(data[: len(data) // 2])

    second = recording_hooks()
    out = gan().train(params, False, tiny_data, tmp_path / "b", second, "cpu", seed=1)
    assert f"resumed from checkpoint at step 2 ({saved.path})" in capsys.readouterr().out
    assert out.finished and second.steps == [3, 4]
    for a, b in zip(straight.losses, first.losses + second.losses, strict=True):
        assert a["g_loss"] == pytest.approx(b["g_loss"], rel=1e-4, abs=1e-6)
    assert not killed.exists() and ckpt.load_checkpoint(root).step == 4
