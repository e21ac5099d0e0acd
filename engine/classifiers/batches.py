"""Which images each optimiser step trains on, for an equal step budget across the arms of one classifier.

Every arm (baseline, each synthetic amount, duplicate control) trains `epochs x steps_per_epoch(n_real)` steps,
the baseline's budget, so that an arm with more images is not simply trained longer. Batches come from endless
streams of seeded shuffles: the images at stream position p depend only on (seed, stream, p), so a run resumed at
any step draws exactly the batches an uninterrupted run would. Two ways to fill a batch of B images:

- pool (default): B images from one stream over real + added images (added ones in proportion to their count);
- `synthetic_fraction` f: round(f x B) images from a stream over the added images and the rest from a stream over
  the real ones, so the real:added ratio of every batch is fixed whatever the amount.

Every batch holds exactly B images (a stream wraps into its next shuffle), so BatchNorm never sees a batch of one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from xaug.engine.recipe.schema import ClassifierSpec

_POOL, _REAL, _ADDED = 0, 1, 2  # stream ids


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps of one epoch over n images (at least one)."""
    return max(1, math.ceil(n / batch_size))


def step_budget(spec: ClassifierSpec, n_real: int) -> int:
    """The steps every arm of `spec` trains: its epochs over the fold's real training split (n_real images)."""
    return spec.epochs * steps_per_epoch(n_real, spec.batch_size)


def validation_interval(spec: ClassifierSpec, n_real: int) -> int:
    """Steps between validations: `val_every_steps`, else one epoch of the real training split."""
    return spec.val_every_steps or steps_per_epoch(n_real, spec.batch_size)


@dataclass(frozen=True)
class BatchPlan:
    """The batches of one run: indices into the real images followed by the added ones (`n_real + i`)."""

    n_real: int
    n_added: int
    batch_size: int
    seed: int
    synthetic_fraction: float | None = None

    @classmethod
    def for_run(cls, spec: ClassifierSpec, n_real: int, n_added: int, seed: int) -> "BatchPlan":
        """The plan of one arm of `spec` with n_real real and n_added added training images."""
        return cls(n_real, n_added, spec.batch_size, seed, spec.synthetic_fraction)

    @property
    def added_per_batch(self) -> int | None:
        """Added images in every batch with a fixed ratio; None when batches are drawn from the pool."""
        if self.synthetic_fraction is None or self.n_added == 0:
            return None
        # Both parts keep at least one image, so the ratio mode never degenerates into one stream.
        return min(max(round(self.synthetic_fraction * self.batch_size), 1), self.batch_size - 1)

    def indices(self, step: int) -> torch.Tensor:
        """Image indices (int64 [batch_size]) of the 0-based optimiser step `step`."""
        added = self.added_per_batch
        if added is None:
            return _stream(self.n_real + self.n_added, step * self.batch_size, self.batch_size, self.seed, _POOL)
        real = self.batch_size - added
        return torch.cat([_stream(self.n_real, step * real, real, self.seed, _REAL),
                          self.n_real + _stream(self.n_added, step * added, added, self.seed, _ADDED)])


def _stream(n: int, start: int, count: int, seed: int, stream: int) -> torch.Tensor:
    """Positions start..start+count-1 of the endless concatenation of seeded shuffles of range(n)."""
    parts, position, end = [], start, start + count
    while position < end:
        shuffle, offset = divmod(position, n)
        take = min(n - offset, end - position)
        parts.append(_shuffle(n, seed, stream, shuffle)[offset:offset + take])
        position += take
    return torch.cat(parts)


@lru_cache(maxsize=8)
def _shuffle(n: int, seed: int, stream: int, index: int) -> torch.Tensor:
    """The `index`-th shuffle of range(n) in one stream of one seed (cached: consecutive steps share it)."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + stream * 65_537 + index * 7_919 + 17) % 2**63)
    return torch.randperm(n, generator=generator)
