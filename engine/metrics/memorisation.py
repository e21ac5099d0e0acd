"""Memorisation: is a synthetic image closer to a training image than real images of the same population ever are?

Each synthetic image's nearest-neighbour (NN) distance to the training images is compared with held-out real
images' NN distances to the same training images (held-out images were never trained on, so their distances show
how close two *different* images of this data set get). A synthetic image closer than the q-th percentile of the
held-out distances is flagged as a probable near-copy.
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
        """Median synthetic NN distance / median held-out NN distance (< 1: synthetic images hug the training set)."""
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


def check_memorisation(synthetic: torch.Tensor, train: torch.Tensor, heldout: torch.Tensor, *,
                       quantile: float = 1.0, n_closest: int = 8) -> MemorisationResult:
    """Flag synthetic feature rows nearer to a training row than the `quantile`-th percentile of held-out rows' NN
    distances, and list the `n_closest` closest synthetic-training pairs."""
    if train.shape[0] == 0 or heldout.shape[0] == 0:
        raise ValueError("the memorisation check needs training and held-out images")
    syn_d, syn_i = nearest_neighbours(synthetic, train)
    held_d, _ = nearest_neighbours(heldout, train)
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
