"""Memorisation: is a synthetic image closer to a training image than real images of the same population ever are?

Each synthetic image's nearest-neighbour (NN) distance to the training images is compared with held-out real
images' NN distances to the same training images (held-out images were never trained on, so their distances show
how close two *different* images of this data set get). A synthetic image closer than the q-th percentile of the
held-out distances is flagged as a probable near-copy.

A percentile is only a percentile with enough values under it: `near_copy_threshold` takes it from a class's own
held-out images when they are at least `min_heldout`, else from the held-out images of all classes together (each
measured against its own class's training images), and gives none when even those are fewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class ClosePair:
    """A synthetic image and its nearest training image."""

    synthetic_index: int
    train_index: int
    distance: float


@dataclass(frozen=True)
class MemorisationResult:
    """Outcome of the check in one feature space."""

    synthetic_distances: np.ndarray
    """NN distance of each synthetic image to the training images."""
    heldout_distances: np.ndarray
    """NN distance of each held-out real image to the training images."""
    threshold: float
    """The q-th percentile of the held-out distances."""
    quantile: float
    """q, in percent."""
    flagged: np.ndarray
    """Indices of synthetic images closer than the threshold (probable near-copies), closest first."""
    closest: list[ClosePair] = field(default_factory=list)
    """The synthetic images closest to a training image, closest first."""

    @property
    def flagged_fraction(self) -> float:
        """Fraction of synthetic images flagged (about q/100 is what fresh real images would give)."""
        return float(len(self.flagged) / max(1, len(self.synthetic_distances)))

    @property
    def distance_ratio(self) -> float:
        """Median synthetic NN distance / median held-out NN distance (< 1: synthetic images hug the training set);
        NaN without held-out images."""
        if len(self.heldout_distances) == 0:
            return float("nan")
        return float(np.median(self.synthetic_distances) / max(np.median(self.heldout_distances), 1e-12))


def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, chunk: int = 1024
                       ) -> tuple[np.ndarray, np.ndarray]:
    """For each query row [N, D], the distance to and index of its nearest reference row [M, D]."""
    distances, indices = [], []
    reference = reference.double()
    for start in range(0, queries.shape[0], chunk):
        d = torch.cdist(queries[start:start + chunk].double(), reference)
        best = d.min(dim=1)
        distances.append(best.values)
        indices.append(best.indices)
    if not distances:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return torch.cat(distances).numpy(), torch.cat(indices).numpy()


def pixel_vectors(images: np.ndarray, side: int = 32) -> torch.Tensor:
    """Grey-scale uint8 images [N, H, W] averaged down to side x side, flattened, in 0..1: a pixel space for NN."""
    x = torch.as_tensor(np.asarray(images)).float().unsqueeze(1) / 255.0
    return torch.nn.functional.adaptive_avg_pool2d(x, side).flatten(1).double()


@dataclass(frozen=True)
class Threshold:
    """A near-copy threshold and where it came from (None: too few held-out images for a percentile)."""

    value: float | None
    n_heldout: int
    """How many held-out distances the percentile was taken over."""
    source: str
    """'class', 'all classes', or 'none'."""


def near_copy_threshold(class_distances: np.ndarray, all_distances: np.ndarray, quantile: float,
                        min_heldout: int) -> Threshold:
    """The `quantile`-th percentile of a class's held-out NN distances if it has `min_heldout` of them, else of all
    classes' held-out distances if those are enough, else no threshold."""
    for distances, source in ((class_distances, "class"), (all_distances, "all classes")):
        if len(distances) >= min_heldout:
            return Threshold(float(np.percentile(distances, quantile)), len(distances), source)
    return Threshold(None, len(all_distances), "none")


def check_memorisation(synthetic: torch.Tensor, train: torch.Tensor, heldout: torch.Tensor | None, *,
                       quantile: float = 1.0, n_closest: int = 8, threshold: float | None = None
                       ) -> MemorisationResult:
    """Flag synthetic feature rows nearer to a training row than `threshold` (default: the `quantile`-th percentile
    of the held-out rows' NN distances), and list the `n_closest` closest synthetic-training pairs."""
    no_heldout = heldout is None or heldout.shape[0] == 0
    if train.shape[0] == 0 or (no_heldout and threshold is None):
        raise ValueError("the memorisation check needs training images, and held-out images or a threshold")
    syn_d, syn_i = nearest_neighbours(synthetic, train)
    held_d = np.zeros(0) if no_heldout else nearest_neighbours(heldout, train)[0]
    if threshold is None:
        threshold = float(np.percentile(held_d, quantile))
    order = np.argsort(syn_d, kind="stable")
    flagged = order[syn_d[order] < threshold]
    closest = [ClosePair(int(i), int(syn_i[i]), float(syn_d[i])) for i in order[:n_closest]]
    return MemorisationResult(syn_d, held_d, threshold, quantile, flagged, closest)


def save_pair_png(synthetic: np.ndarray, train: np.ndarray, path: Path, gap: int = 4) -> Path:
    """Save a synthetic image and its nearest training image side by side (synthetic left) as a grey PNG."""
    from PIL import Image

    h = max(synthetic.shape[0], train.shape[0])
    canvas = np.full((h, synthetic.shape[1] + gap + train.shape[1]), 255, dtype=np.uint8)
    canvas[:synthetic.shape[0], :synthetic.shape[1]] = synthetic
    canvas[:train.shape[0], synthetic.shape[1] + gap:] = train
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return path
