"""Speed of classifier training on one GPU: xaug's settings against the example-script settings.

Training arms, measured in one process on the same random images with the classifier job's own batch path and
step (`engine/classifiers/train.py`):
- reference: the timm/diffusers example-script defaults: fp32, contiguous tensors, torch's default Adam, no compile;
- xaug: what the train_classifier job does (`engine/precision.py`: bf16 autocast and channels-last on a GPU);
- tuned: xaug plus fused Adam (and torch.compile with `compile`), measured as candidates.
Each timed step is split into waiting for the batch (index, gather, copy to the device, augment, normalise) and
computing the step, so a data path that starves the GPU shows as a large wait share; on a GPU, nvidia-ml-py (when
installed) samples its utilisation meanwhile.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from xaug.engine.bench.measure import WARMUP_STEPS, PeakMemory, row, sync

CLASSES = ["healthy", "bacterial", "viral", "covid19", "fungal"]


@dataclass(frozen=True)
class Arm:
    """Training settings of one arm."""

    name: str
    amp: bool
    channels_last: bool = False
    fused: bool = False
    compile: bool = False


REFERENCE = Arm("reference", amp=False)
XAUG = Arm("xaug", amp=True, channels_last=True)
TUNED = Arm("+fused Adam", amp=True, channels_last=True, fused=True)


def classifier_spec(model: str, image_size: int, batch_size: int = 8, epochs: int = 1):
    """The spec measured: the paper's settings (Adam 1e-4, batch 8), random weights (no download)."""
    from xaug.engine.recipe.schema import ClassifierSpec

    return ClassifierSpec(model=model, pretrained=False, image_size=image_size, batch_size=batch_size,
                          epochs=epochs)


def random_images(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n grey uint8 images [n,size,size] and labels over the five classes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size), dtype=np.uint8), rng.integers(0, len(CLASSES), n)


class _UtilisationSampler:
    """Mean GPU utilisation (%) over a `with` block, from nvidia-ml-py every 0.2 s; nan when it cannot be read."""

    def __init__(self, device: str) -> None:
        self.on = device.startswith("cuda")
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "_UtilisationSampler":
        if self.on:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.on:
            self._stop.set()
            self._thread.join()

    @property
    def mean(self) -> float:
        """The mean of the samples, or nan."""
        return float(np.mean(self.samples)) if self.samples else float("nan")

    def _sample(self) -> None:
        from xaug.engine.queue.gpus import read_gpu_stats

        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or "0"
        while not self._stop.wait(0.2):
            stats = {s["gpu"]: s["utilization"] for s in read_gpu_stats()}
            index = int(visible) if visible.isdigit() else 0
            if index in stats:
                self.samples.append(stats[index])


def train_arm(spec, arm: Arm, images: np.ndarray, labels: np.ndarray, device: str, budget_s: float,
              max_steps: int = 200) -> dict:
    """Train `spec` with `arm`'s settings for about `budget_s` seconds: steps/s, the share of time spent waiting
    for batches, mean GPU utilisation and peak memory."""
    import torch

    from xaug.engine.classifiers.augment import make_augmentation
    from xaug.engine.classifiers.batches import BatchPlan
    from xaug.engine.classifiers.registry import create_classifier, input_stats
    from xaug.engine.classifiers.train import make_optimizer, train_step, training_batch
    from xaug.engine.precision import precision_for

    cuda = device.startswith("cuda")
    with PeakMemory(device) as peak:
        torch.manual_seed(0)
        # The job's precision policy (channels-last only on a GPU); train_step puts each batch in its layout.
        precision = precision_for(device, arm.amp, channels_last=arm.channels_last)
        model = precision.memory_format(create_classifier(spec, len(CLASSES)).to(device))
        mean, std = input_stats(model, spec.in_chans)
        optimizer = (torch.optim.Adam(model.parameters(), lr=spec.lr, fused=True) if arm.fused and cuda
                     else make_optimizer(spec, model))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10**6)
        scaler = precision.grad_scaler()
        step_model = torch.compile(model) if arm.compile else model
        pool, targets = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
        plan = BatchPlan.for_run(spec, len(images), 0, seed=0)
        augmentation = make_augmentation(spec.augment)
        model.train()
        waited = computed = 0.0
        steps, start = 0, time.perf_counter()
        with _UtilisationSampler(device) as utilisation:
            while steps <= WARMUP_STEPS or (steps < WARMUP_STEPS + max_steps
                                            and time.perf_counter() - start < budget_s):
                t0 = time.perf_counter()
                index = plan.indices(steps)
                x = training_batch(pool[index], augmentation, spec.in_chans, mean, std, device)
                y = targets[index].to(device)
                sync(device)
                t1 = time.perf_counter()
                train_step(step_model, optimizer, scheduler, scaler, x, y, precision, None)  # its loss.item() syncs
                t2 = time.perf_counter()
                steps += 1
                if steps > WARMUP_STEPS:
                    waited, computed = waited + t1 - t0, computed + t2 - t1
                else:  # warm-up (allocation, autotuning, compilation) is not the steady state: the budget starts now
                    utilisation.samples.clear()
                    start = time.perf_counter()
    timed = steps - WARMUP_STEPS
    infer = _inference_rate(model, images, spec, mean, std, device, arm.amp)
    return {"steps_per_s": timed / (waited + computed), "wait_share": waited / (waited + computed),
            "utilisation": utilisation.mean, "peak_gib": peak.gib, "memory_metric": peak.metric,
            "infer_images_per_s": infer, "steps": timed}


def _inference_rate(model, images: np.ndarray, spec, mean, std, device: str, amp: bool) -> float:
    """Images/s of the evaluate job's prediction path (eval mode, batches of 64)."""
    from xaug.engine.classifiers.train import predict_probs

    predict_probs(model, images[:8], spec.in_chans, mean, std, device, amp)  # warm-up
    sync(device)
    start = time.perf_counter()
    predict_probs(model, images, spec.in_chans, mean, std, device, amp)
    sync(device)
    return len(images) / (time.perf_counter() - start)


def classifier_rows(model: str, image_size: int, device: str, budget_s: float, n_images: int = 256,
                    compile: bool = False) -> list[dict]:
    """Rows of one classifier: training steps/s, inference images/s, peak memory, data wait share (and GPU
    utilisation on a GPU when nvidia-ml-py is installed), xaug vs reference; then the tuned candidates vs
    reference."""
    spec = classifier_spec(model, image_size)
    images, labels = random_images(n_images, image_size)
    arms = [REFERENCE, XAUG, TUNED] + ([Arm("+fused Adam +compile", True, True, True, True)] if compile else [])
    per_arm = budget_s / len(arms)
    result = {arm.name: train_arm(spec, arm, images, labels, device, per_arm) for arm in arms}
    ref, mine = result[REFERENCE.name], result[XAUG.name]
    name = f"{model} {image_size}px b{spec.batch_size}"
    rows = [row(f"{name} train", "it/s", mine["steps_per_s"], ref["steps_per_s"]),
            row(f"{name} train", mine["memory_metric"], mine["peak_gib"], ref["peak_gib"]),
            row(f"{name} inference", "images/s", mine["infer_images_per_s"], ref["infer_images_per_s"]),
            row(f"{name} train: waiting for batches", "% of step", 100 * mine["wait_share"], 100 * ref["wait_share"])]
    if np.isfinite(mine["utilisation"]) and np.isfinite(ref["utilisation"]):  # on a GPU, with nvidia-ml-py
        rows.append(row(f"{name} train: GPU utilisation", "%", mine["utilisation"], ref["utilisation"]))
    for arm in arms[2:]:
        rows.append(row(f"{name} train {arm.name}", "it/s", result[arm.name]["steps_per_s"], ref["steps_per_s"]))
    return rows
