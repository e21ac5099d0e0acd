"""The one checkpoint mechanism: atomic folders, a `latest` pointer, kill -9 at any instant leaves old or new."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from xaug.engine import checkpoint as ckpt


def _tensors(step: int) -> dict[str, torch.Tensor]:
    """Tensors whose every value says which step wrote them."""
    return {"w": torch.full((128, 128), float(step)), "b": torch.full((7,), float(step)),
            "n": torch.full((3,), step, dtype=torch.int64)}


def _assert_consistent(root: Path, allowed: set[int]) -> int:
    """The newest checkpoint is complete, from one of the allowed steps, and every part of it is from that step."""
    saved = ckpt.load_checkpoint(root)
    assert saved is not None and saved.step in allowed
    assert saved.scalars["value"] == saved.step
    tensors = saved.tensors()
    assert set(tensors) == {"w", "b", "n"}
    for name, tensor in tensors.items():
        assert torch.all(tensor == saved.step), f"{name} of step {saved.step} holds other steps' values"
    assert (saved.path / "extra" / "note.txt").read_text() == f"step {saved.step}"
    return saved.step


def _save(root: Path, step: int) -> Path:
    def fill(folder: Path) -> None:
        (folder / "extra").mkdir()
        (folder / "extra" / "note.txt").write_text(f"step {step}")

    return ckpt.save_checkpoint(root, step, _tensors(step), {"value": step}, fill=fill)


def _save_paused_at(root: Path, step: int, pause_at: int, ready_fd: int) -> None:
    """In a forked child: save, but stop forever just before the `pause_at`-th file-system operation."""
    count = 0

    def pausing(fn):
        def wrapper(*args, **kwargs):
            nonlocal count
            if count == pause_at:
                os.write(ready_fd, b"p")
                while True:
                    time.sleep(60)
            count += 1
            return fn(*args, **kwargs)
        return wrapper

    os.rename, os.replace, os.fsync = pausing(os.rename), pausing(os.replace), pausing(os.fsync)
    shutil.rmtree = pausing(shutil.rmtree)
    ckpt.save_file = pausing(ckpt.save_file)
    Path.write_text = pausing(Path.write_text)
    Path.mkdir = pausing(Path.mkdir)
    _save(root, step)
    os.write(ready_fd, b"d")


def test_kill_at_every_step_of_a_save_leaves_the_old_or_the_new_checkpoint(tmp_path):
    seen = set()
    for pause_at in range(200):
        root = tmp_path / f"run{pause_at}"
        _save(root, 1)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            try:
                os.close(read_fd)
                _save_paused_at(root, 2, pause_at, write_fd)
            finally:
                os._exit(0)
        os.close(write_fd)
        what = os.read(read_fd, 1)
        os.close(read_fd)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        step = _assert_consistent(root, {1, 2})
        seen.add(step)
        # Resuming from it and saving again works, and clears what the killed save left behind.
        _save(root, 3)
        assert _assert_consistent(root, {3}) == 3
        assert sorted(p.name for p in root.iterdir()) == [ckpt.LATEST, "step-000000003"]
        if what == b"d":  # the save ran to its end without reaching pause_at: every instant was tried
            break
    else:
        pytest.fail("the save never finished")
    assert seen == {1, 2} and pause_at > 8


WRITER = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    from xaug.engine import checkpoint as ckpt

    root = Path(sys.argv[1])
    saved = ckpt.resume_checkpoint(root)
    step = saved.step if saved else 0
    while True:
        step += 1
        big = {"a": torch.full((1024, 1024), float(step)), "b": torch.full((512, 1024), float(step))}
        ckpt.save_checkpoint(root, step, big, {"value": step})
        print(f"saved {step}", flush=True)
""")


def test_random_sigkill_of_a_writing_process_then_resume(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    root = tmp_path / "ckpt"
    rng = random.Random(7)
    last_durable = 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(root)], stdout=subprocess.PIPE, text=True, env=env)
        first = proc.stdout.readline()
        if last_durable:
            assert first.startswith(f"resumed from checkpoint at step ")
            first = proc.stdout.readline()
        assert first.startswith("saved ")
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        rest = proc.communicate()[0]
        printed = [int(line.split()[1]) for line in (first + rest).splitlines() if line.startswith("saved ")]
        saved = ckpt.load_checkpoint(root)
        # Every step printed was saved before the print; the kill may have landed after one more save.
        assert saved.step in (printed[-1], printed[-1] + 1)
        assert saved.step > last_durable and saved.scalars["value"] == saved.step
        tensors = saved.tensors()
        assert torch.all(tensors["a"] == saved.step) and torch.all(tensors["b"] == saved.step)
        last_durable = saved.step


def test_latest_pointer_fallback_serials_and_keep(tmp_path, capsys):
    root = tmp_path / "c"
    assert ckpt.load_checkpoint(root) is None and ckpt.resume_checkpoint(root) is None
    _save(root, 5)
    again = _save(root, 5)  # the same step saved twice: a new folder, which `latest` names
    assert again.name == "step-000000005-1" and ckpt.load_checkpoint(root).path == again
    (root / "step-000000009.tmp-123").mkdir()  # a killed save's leftover: never loaded
    (root / ckpt.LATEST).unlink()
    assert ckpt.load_checkpoint(root).path == again
    assert ckpt.resume_checkpoint(root).step == 5
    assert "resumed from checkpoint at step 5" in capsys.readouterr().out
    ckpt.save_checkpoint(root, 6, {"x": torch.ones(2)}, {"value": 6}, keep=2)
    assert sorted(p.name for p in root.iterdir()) == [ckpt.LATEST, "step-000000005-1", "step-000000006"]
    assert json.loads((root / "step-000000006" / ckpt.SCALARS).read_text()) == {"step": 6, "value": 6}


def test_optimizer_and_rng_roundtrip_without_pickle(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(2):
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    tensors, scalars = ckpt.optimizer_to_state(opt)
    ckpt.save_checkpoint(tmp_path, 2, {**ckpt.prefixed("opt", tensors), **ckpt.prefixed("rng", ckpt.rng_to_tensors())},
                         {"opt": scalars})
    expected = torch.rand(3)
    saved = ckpt.load_checkpoint(tmp_path)
    fresh = torch.optim.AdamW(model.parameters(), lr=1.0)
    ckpt.optimizer_from_state(fresh, saved.tensors(prefix="opt"), saved.scalars["opt"])
    ckpt.rng_from_tensors(saved.tensors(prefix="rng"))
    assert torch.equal(torch.rand(3), expected)
    a, b = opt.state_dict(), fresh.state_dict()
    assert b["param_groups"][0]["lr"] == pytest.approx(1e-2)
    for pid in a["state"]:
        for key, value in a["state"][pid].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][pid][key]))
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.pkl"))
