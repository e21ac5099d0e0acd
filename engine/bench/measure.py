"""What every benchmark measures the same way: device sync, seconds per call, peak memory, and the result row.

A row is `{"name", "metric", "xaug", "reference", "ratio"}`: the same quantity for xaug's settings and for the
reference (the diffusers example-script settings, or one job per GPU), measured side by side in one process.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

WARMUP_STEPS = 2
"""Steps run before timing (allocation, cuDNN autotuning, compilation)."""


def sync(device: str) -> None:
    """Wait for the GPU's queued work (nothing to wait for on the CPU)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def seconds_per_call(fn: Callable[[], None], repeats: int, device: str, warmup: int = WARMUP_STEPS) -> float:
    """Seconds per call of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def row(name: str, metric: str, xaug: float, reference: float) -> dict:
    """One result row; ratio = xaug / reference (nan when the reference is 0 or not finite)."""
    ratio = xaug / reference if reference and np.isfinite(reference) else float("nan")
    return {"name": name, "metric": metric, "xaug": round(xaug, 4), "reference": round(reference, 4),
            "ratio": round(ratio, 3)}


class PeakMemory:
    """Peak memory (GiB) of what runs inside `with`: PyTorch's CUDA allocator peak on a GPU; on the CPU the
    process's resident set, sampled every few milliseconds (it includes the interpreter and libraries)."""

    SAMPLE_S = 0.005

    def __init__(self, device: str) -> None:
        self.device = device
        self.gib = float("nan")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak = 0

    @property
    def metric(self) -> str:
        """The row's metric name: what was measured."""
        return "peak GiB" if self.device.startswith("cuda") else "peak RSS GiB"

    def __enter__(self) -> "PeakMemory":
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            import torch

            self.gib = torch.cuda.max_memory_allocated() / 2**30
        else:
            self._stop.set()
            self._thread.join()
            self.gib = self._peak / 2**30

    def _sample(self) -> None:
        import psutil

        process = psutil.Process()
        while True:
            self._peak = max(self._peak, process.memory_info().rss)
            if self._stop.wait(self.SAMPLE_S):
                return
