"""How the local scheduler hands out GPUs: whole GPUs to jobs that need several, shares of one GPU's memory to
small jobs that declare (or have measured) how much they use.

Placement. A job without a memory estimate takes its GPUs whole. A job with one (`resources.gpu_memory_gb`, or
the peak measured on earlier jobs of its group) may start on a GPU that already runs other such jobs, while their
estimates add up to no more than the GPU's memory; an idle GPU always takes it (even when the estimate exceeds the
GPU: running alone is the best it can get). Among the GPUs it fits on, a job goes to the least busy one first,
since jobs that share a GPU also share its compute.

The reservation, in three rules (the engine asks `GpuReservation.gpus_for` for each runnable job in queue order:
priority, then age):
1. A job that needs n GPUs gets n GPUs it fits on, if there are n that nobody has reserved.
2. A job that fits on fewer GPUs than it needs is *blocked*. The first blocked job in queue order that has been
   blocked for at least `reserve_after_s` seconds becomes the *holder* (one holder at a time, so two wide jobs
   never each hold half of what they need: no deadlock). From then on the GPUs that are idle, or become idle, are
   reserved for it, up to the number it needs. GPUs held whole by one job become idle on their own; a shared GPU
   would take new small jobs for ever, so, when the idle and whole-held GPUs are fewer than the holder needs, just
   enough shared GPUs (the least loaded) are *drained*: closed to new jobs until the holder starts.
3. Other jobs may backfill only GPUs outside the reservation (CPU jobs are never affected). Once the holder fits,
   it gets its GPUs and the reservation ends.

So a job that needs N GPUs waits at most for the running jobs on its reserved GPUs to end, never for jobs queued
after it (no starvation), and smaller jobs keep every other GPU busy until the reservation starts
(`reserve_after_s`, default 0: reserve at once; a longer delay trades the wide job's wait for fewer idle GPUs).
Without memory estimates no GPU is shared and the rules are those of whole GPUs. Under Slurm this module plays no
part: the job asks Slurm for its `gpus_needed` GPUs on one node and Slurm's own scheduler decides.

Pure and free of I/O and torch: the engine passes a snapshot of the GPUs (`GpuSlot`) and the runnable keys; tests
drive it directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuSlot:
    """One GPU as the scheduler sees it now: its memory and what runs on it."""

    gpu: int
    memory_mb: float | None = None
    """Its total memory; None when unknown (then it is never shared)."""
    claimed_mb: float = 0.0
    """Sum of the memory estimates of the jobs running on it."""
    jobs: int = 0
    """Number of jobs running on it."""
    whole: bool = False
    """A job without a memory estimate runs on it: nothing else may start there."""

    @property
    def idle(self) -> bool:
        """Whether no job runs on it."""
        return self.jobs == 0

    @property
    def shared(self) -> bool:
        """Whether it runs jobs and may take more: the jobs on it all have memory estimates, and its memory is
        known. Any other GPU frees up on its own once its jobs end, since no new job can join them."""
        return not self.idle and not self.whole and self.memory_mb is not None

    def fits(self, memory_mb: float | None) -> bool:
        """Whether a job with this memory estimate (None: it takes the GPU whole) may start here now."""
        if self.idle:
            return True
        if memory_mb is None or not self.shared:
            return False
        return self.claimed_mb + memory_mb <= self.memory_mb


MEASURED_MARGIN = 1.15
"""A measured peak is scaled by this: a later job of the same group may meet more fragmentation."""
CUDA_CONTEXT_MB = 768.0
"""Memory a worker uses outside PyTorch's allocator (CUDA context, cuBLAS/cuDNN handles), added to a measured peak
(the worker measures `torch.cuda.max_memory_reserved`, which does not see it)."""


def memory_estimate_mb(declared_mb: float | None, measured_peak_mb: float | None) -> float | None:
    """The memory a job is placed with: its declaration (the recipe's `resources.gpu_memory_gb`, whole process),
    else a measured peak with margin and context, else None (it takes its GPUs whole)."""
    if declared_mb:
        return float(declared_mb)
    if measured_peak_mb:
        return float(measured_peak_mb) * MEASURED_MARGIN + CUDA_CONTEXT_MB
    return None


def idle_gpus(*ids: int) -> list[GpuSlot]:
    """Slots of idle GPUs of unknown memory (whole-GPU scheduling; used by tests and callers without sharing)."""
    return [GpuSlot(gpu) for gpu in ids]


class GpuReservation:
    """GPU assignment with one reservation for the longest-blocked job (the rules above)."""

    def __init__(self, reserve_after_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.reserve_after_s = float(reserve_after_s)
        self.clock = clock
        self.holder: str | None = None
        """Key of the job the GPUs are reserved for, or None."""
        self.holder_need = 0
        self.draining: list[int] = []
        """Shared GPUs closed to new jobs until the holder starts (rule 2)."""
        self._blocked_since: dict[str, float] = {}

    def gpus_for(self, key: str, need: int, gpus: Sequence[GpuSlot],
                 memory_mb: float | None = None) -> list[int] | None:
        """The GPU ids to start job `key` on (it needs `need` >= 1 of them, each with `memory_mb` free, or whole
        when None), or None: it must wait."""
        fitting = [slot.gpu for slot in sorted(gpus, key=_least_busy) if slot.fits(memory_mb)]
        if key == self.holder:
            if len(fitting) < need:
                self._drain_enough(gpus)
                return None
            self._release(key)
            return fitting[:need]
        closed = set(self.reserved(gpus))
        usable = [gpu for gpu in fitting if gpu not in closed]
        if len(usable) >= need:
            self._blocked_since.pop(key, None)
            return usable[:need]
        since = self._blocked_since.setdefault(key, self.clock())
        if self.holder is None and self.clock() - since >= self.reserve_after_s:
            self.holder, self.holder_need = key, need
            self._drain_enough(gpus)
        return None

    def reserved(self, gpus: Sequence[GpuSlot]) -> list[int]:
        """The GPUs only the holder may start on: those drained for it, then idle ones up to its need."""
        if self.holder is None:
            return []
        idle = [slot.gpu for slot in gpus if slot.idle and slot.gpu not in self.draining]
        return self.draining + idle[:max(0, self.holder_need - len(self.draining))]

    def keep_only(self, waiting: Iterable[str]) -> None:
        """Forget jobs no longer waiting (claimed elsewhere, cancelled, blocked by a failed dependency)."""
        waiting = set(waiting)
        self._blocked_since = {k: t for k, t in self._blocked_since.items() if k in waiting}
        if self.holder is not None and self.holder not in waiting:
            self._release(self.holder)

    @property
    def tracking(self) -> bool:
        """Whether any job is blocked or holds a reservation (the engine then prunes with `keep_only`)."""
        return self.holder is not None or bool(self._blocked_since)

    def _drain_enough(self, gpus: Sequence[GpuSlot]) -> None:
        """Close the least loaded shared GPUs, as many as the holder would otherwise lack: every other GPU is idle
        or becomes so on its own, a shared one only when no new job joins it."""
        freeing = sum(1 for slot in gpus if not slot.shared and slot.gpu not in self.draining)
        short = self.holder_need - len(self.draining) - freeing
        if short <= 0:
            return
        open_shared = sorted((slot for slot in gpus if slot.shared and slot.gpu not in self.draining),
                             key=lambda slot: (slot.claimed_mb, slot.gpu))
        self.draining += [slot.gpu for slot in open_shared[:short]]

    def _release(self, key: str) -> None:
        self.holder, self.holder_need, self.draining = None, 0, []
        self._blocked_since.pop(key, None)


def _least_busy(slot: GpuSlot) -> tuple[int, float, int]:
    """Placement order: fewest running jobs, then least memory claimed, then GPU id."""
    return slot.jobs, slot.claimed_mb, slot.gpu
