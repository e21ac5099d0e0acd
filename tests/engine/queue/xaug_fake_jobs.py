"""Tiny fake job kinds for the engine's tests: count steps, checkpoint to JSON, record metrics, sleep, resume.

Config keys: steps (default 3), sleep (seconds per step), fail (always raise), fail_once (raise on the first
attempt only), data_error (raise a DataError), kill_once (SIGKILL its own worker on the first attempt),
ignore_stop (never check for stop requests), cuda_mb (hold that many MiB on the GPU while it runs).
"""

from __future__ import annotations

import json
import os
import sys
import time


def run(ctx) -> None:
    """Count to `steps`, one checkpoint per step; resumes from the checkpoint's step."""
    cfg = ctx.config
    work = ctx.work_dir
    ckpt = work / "ckpt.json"
    step = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
    with open(work / "starts.txt", "a") as fh:
        fh.write(f"{step}\n")
    (work / "env.json").write_text(json.dumps({
        "device": ctx.device, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "order": os.environ.get("CUDA_DEVICE_ORDER"), "deps": sorted(ctx.deps),
        "torch_preloaded": "torch" in sys.modules, "threads": os.environ.get("OMP_NUM_THREADS")}))
    with open(ctx.artifact_root / "order.txt", "a") as fh:
        fh.write(f"{cfg.get('name', ctx.key[:8])}\n")
    if cfg.get("fail"):
        raise RuntimeError(f"fake failure in {cfg.get('name')}")
    if cfg.get("data_error"):
        from xaug.engine.errors import DataError

        raise DataError(f"{cfg.get('name')}.png is not an image")
    if cfg.get("kill_once") and not (work / "killed_once").exists():
        (work / "killed_once").write_text("1")
        os.kill(os.getpid(), 9)
    if cfg.get("fail_once") and not (work / "failed_once").exists():
        (work / "failed_once").write_text("1")
        raise ValueError("fails the first time")
    if cfg.get("cuda_mb") and ctx.device == "cuda":
        import torch

        held = torch.empty(int(cfg["cuda_mb"]) * 2**20, dtype=torch.uint8, device="cuda")  # noqa: F841
    steps = int(cfg.get("steps", 3))
    while step < steps:
        time.sleep(float(cfg.get("sleep", 0.0)))
        step += 1
        ctx.metrics(step, {"loss": 1.0 / step, "step_seen": float(step)})
        tmp = work / "ckpt.json.tmp"
        tmp.write_text(json.dumps({"step": step}))
        os.replace(tmp, ckpt)
        ctx.progress(step, steps, f"step {step}/{steps}")
        if not cfg.get("ignore_stop"):
            ctx.check_stop()
    (work / "done.txt").write_text(str(step))
    if ctx.kind == "evaluate":
        _fake_scores(ctx)


def _fake_scores(ctx) -> None:
    """Per-class and overall scores that vary with fold and seed, as a real evaluate job records them."""
    from xaug.store.metrics import record_class_metrics, record_results

    cfg = ctx.config
    wobble = 0.01 * (cfg.get("fold", 0) + 2 * cfg.get("seed", 0))
    rows = [{"class_name": name, "precision": 0.5 + wobble, "recall": 0.4 + i * 0.1, "f1": 0.45 + wobble,
             "support": 10 + i} for i, name in enumerate(cfg["classes"])]
    record_class_metrics(ctx.db, ctx.key, rows)
    record_results(ctx.db, ctx.key, {"accuracy": 0.6 + wobble, "balanced_accuracy": 0.5, "macro_f1": 0.45 + wobble})
