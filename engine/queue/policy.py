"""How the local scheduler hands out GPUs when jobs need different numbers of them.

The policy, in three rules (the engine asks `GpuReservation.gpus_for` for each runnable job in queue order:
priority, then age):
1. A job that needs n GPUs gets n free GPUs, if there are n free that nobody has reserved.
2. A job that needs more GPUs than are free is *blocked*. The first blocked job in queue order that has been
   blocked for at least `reserve_after_s` seconds becomes the *holder* (one holder at a time, so two wide jobs
   never each hold half of what they need: no deadlock). From then on the GPUs that are free, or become free, are
   reserved for it, up to the number it needs.
3. Other jobs may backfill only the free GPUs beyond the holder's reservation (CPU jobs are never affected). Once
   enough GPUs are free, the holder gets them and the reservation ends.

So a job that needs N GPUs waits at most for the running jobs to end, never for jobs queued after it (no
starvation), and smaller jobs keep every GPU busy until the reservation starts (`reserve_after_s`, default 0:
reserve at once; a longer delay trades the wide job's wait for fewer idle GPUs). Under Slurm this module plays no
part: the job asks Slurm for its `gpus_needed` GPUs on one node and Slurm's own scheduler decides.

Pure and free of I/O and torch: the engine passes the free GPUs and the runnable keys; tests drive it directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


class GpuReservation:
    """GPU assignment with one reservation for the longest-blocked multi-GPU job (the rules above)."""

    def __init__(self, reserve_after_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.reserve_after_s = float(reserve_after_s)
        self.clock = clock
        self.holder: str | None = None
        """Key of the job the free GPUs are reserved for, or None."""
        self.holder_need = 0
        self._blocked_since: dict[str, float] = {}

    def gpus_for(self, key: str, need: int, free: list[int]) -> list[int] | None:
        """The GPU ids to start job `key` on (it needs `need` >= 1 of them), or None: it must wait."""
        if key == self.holder:
            if len(free) < need:
                return None
            self._release(key)
            return free[:need]
        usable = free[min(self.holder_need, len(free)):] if self.holder is not None else free
        if len(usable) >= need:
            self._blocked_since.pop(key, None)
            return usable[:need]
        since = self._blocked_since.setdefault(key, self.clock())
        if self.holder is None and self.clock() - since >= self.reserve_after_s:
            self.holder, self.holder_need = key, need
        return None

    def reserved(self, free: list[int]) -> list[int]:
        """The free GPUs that only the holder may use."""
        return free[:self.holder_need] if self.holder is not None else []

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

    def _release(self, key: str) -> None:
        self.holder, self.holder_need = None, 0
        self._blocked_since.pop(key, None)
