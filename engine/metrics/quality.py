"""Image quality of synthetic images against real ones, in one feature space, at a fixed N recorded with each value.

Real and synthetic images are compared at one resolution (`comparison_side`), both brought there by the same
resize (`at_side`), so that a reference stored at a higher resolution than the samples does not change a value.
Each value says which real images it was computed against (`reference`: the fold's training images, or held-out
ones from its validation split) and whether its class had enough images to mean something (`meaningful`, `note`).
The overall value of a metric (class '') is the macro-average of the meaningful per-class values.

- FID and KID (torchmetrics, fed precomputed features); KID is unbiased and preferable for small classes.
- Improved precision/recall (Kynkäänniemi et al. 2019): k-NN balls around real (fake) features.
- Density/coverage (Naeem et al. 2020): k-NN balls around real features only, robust to outliers.
- MS-SSIM among random pairs of synthetic images (the paper's diversity metric; higher = less diverse).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

K_NEIGHBOURS = 5
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


@dataclass(frozen=True)
class QualityValue:
    """One quality number with the sample sizes it was computed on (a `quality` row without the job key)."""

    class_name: str
    metric: str
    features: str
    value: float
    std: float | None
    n_real: int
    n_fake: int
    reference: str = "train"
    """The real images compared with: 'train' (the fold's training split), 'heldout' (its validation split), or
    '' for values of the synthetic images alone (MS-SSIM among synthetic pairs)."""
    meaningful: bool = True
    """False when the class had too few images for the value to be read (it is recorded, and left out of the
    overall macro-average)."""
    note: str | None = None
    """Why a value is not meaningful, or how an overall value was formed."""

    def row(self) -> dict:
        """As a dict for `record_quality`."""
        return dict(class_name=self.class_name, metric=self.metric, features=self.features, value=self.value,
                    std=self.std, n_real=self.n_real, n_fake=self.n_fake, reference=self.reference,
                    meaningful=self.meaningful, note=self.note)


def comparison_side(configured: int | None, real_side: int, fake_side: int) -> int:
    """The side (px) at which real and synthetic images are compared: the recipe's quality.image_size, else the
    smaller of the two (never upsample one set to meet the other)."""
    return int(configured) if configured else int(min(real_side, fake_side))


def at_side(images: np.ndarray, side: int) -> np.ndarray:
    """Grey uint8 images [N, H, W] at `side` x `side`: the one resize that real and synthetic images both go
    through before any metric (the antialiased resize generators use to make their training images)."""
    from xaug.engine.data.resize import resize_images

    return resize_images(np.asarray(images), side)


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to real and fake features [N, D] (torchmetrics)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    from xaug.engine.metrics.features import PrecomputedFeatures

    metric = FrechetInceptionDistance(feature=PrecomputedFeatures(real.shape[1]), reset_real_features=True)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return max(0.0, float(metric.compute()))


def kid(real: torch.Tensor, fake: torch.Tensor, subset_size: int, subsets: int = 100, seed: int = 0
        ) -> tuple[float, float, int]:
    """Kernel Inception Distance (polynomial-kernel MMD², mean and std over subsets) and the subset size used.

    The subset size is clamped to the smaller set, so that a small class still gets a value.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    from xaug.engine.metrics.features import PrecomputedFeatures

    size = int(min(subset_size, real.shape[0], fake.shape[0]))
    with warnings.catch_warnings():  # "will save all extracted features": they are already in memory here
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=PrecomputedFeatures(real.shape[1]), subsets=subsets,
                                         subset_size=size)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        mean, std = metric.compute()
    finally:
        torch.random.set_rng_state(state)
    return float(mean), float(std), size


def _kth_neighbour_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    distances = torch.cdist(features, features)
    k = min(k, features.shape[0] - 1)
    return distances.kthvalue(k + 1, dim=1).values  # +1: the point itself is at distance 0


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = K_NEIGHBOURS) -> tuple[float, float]:
    """Improved precision (fake inside the real manifold) and recall (real inside the fake manifold)."""
    real_radii = _kth_neighbour_radii(real, k)
    fake_radii = _kth_neighbour_radii(fake, k)
    fake_to_real = torch.cdist(fake, real)
    precision = (fake_to_real <= real_radii.unsqueeze(0)).any(dim=1).double().mean()
    recall = (fake_to_real.T <= fake_radii.unsqueeze(0)).any(dim=1).double().mean()
    return float(precision), float(recall)


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = K_NEIGHBOURS) -> tuple[float, float]:
    """Density (how many real k-NN balls hold each fake, /k; ~1 for matching distributions) and coverage
    (fraction of real balls that hold at least one fake)."""
    real_radii = _kth_neighbour_radii(real, k)
    inside = torch.cdist(real, fake) <= real_radii.unsqueeze(1)  # [n_real, n_fake]
    density = inside.double().sum() / (k * fake.shape[0])
    coverage = inside.any(dim=1).double().mean()
    return float(density), float(coverage)


def ms_ssim_settings(side: int) -> tuple[int, float, tuple[float, ...]]:
    """Gaussian kernel size, its sigma and the scale weights that torchmetrics' MS-SSIM accepts for `side` px.

    The standard 11-pixel kernel (sigma 1.5) over 5 scales needs at least 176 px; smaller images get fewer scales
    (the finest ones' weights, renormalised) and a smaller kernel, keeping the kernel at 7+ px when possible
    (64 px: 4 scales, 7 px).
    """
    for min_kernel in (7, 3):
        for scales in range(5, 0, -1):
            for kernel in range(11, min_kernel - 1, -2):
                divisor = max(1, scales - 1) ** 2
                coarsest = side // 2 ** (scales - 1)
                if side >= 2**scales and side // divisor > kernel - 1 and coarsest >= kernel:
                    betas = MS_SSIM_BETAS[:scales]
                    total = sum(betas)
                    # torchmetrics sizes a Gaussian kernel from sigma (2 * int(3.5 sigma + 0.5) + 1), not kernel_size
                    return kernel, 1.5 * (kernel - 1) / 10, tuple(b / total for b in betas)
    raise ValueError(f"images of {side} px are too small for MS-SSIM (need at least 4 px)")


def ms_ssim_diversity(images: np.ndarray, n_pairs: int = 200, seed: int = 0, batch_size: int = 32
                      ) -> tuple[float, float, int]:
    """Mean and std of MS-SSIM over random pairs of distinct images uint8 [N, H, W], and the number of pairs."""
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as ms_ssim

    n = images.shape[0]
    if n < 2:
        raise ValueError("MS-SSIM diversity needs at least two images")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, n_pairs)
    second = (first + rng.integers(1, n, n_pairs)) % n  # never the same image
    kernel, sigma, betas = ms_ssim_settings(min(images.shape[-2:]))
    x = torch.as_tensor(images).float().unsqueeze(1) / 255.0
    values = []
    for start in range(0, n_pairs, batch_size):
        a, b = first[start:start + batch_size], second[start:start + batch_size]
        values.append(ms_ssim(x[a], x[b], kernel_size=kernel, sigma=sigma, betas=betas, data_range=1.0,
                              reduction="none"))
    scores = torch.cat(values).double()
    return float(scores.mean()), float(scores.std()) if n_pairs > 1 else 0.0, n_pairs


FEATURE_METRICS = ("fid", "kid", "precision", "recall", "density", "coverage")


def feature_metrics(real: torch.Tensor, fake: torch.Tensor, *, class_name: str, features: str,
                    kid_subset_size: int, k: int = K_NEIGHBOURS, seed: int = 0, reference: str = "train",
                    min_images: int = 2) -> list[QualityValue]:
    """FID, KID, precision, recall, density and coverage of one class in one space, against one reference.

    The KID subset is clamped to the smaller set; when either set has fewer than `min_images` images every value is
    marked not meaningful, with a note giving the sizes.
    """
    n_real, n_fake = int(real.shape[0]), int(fake.shape[0])
    kid_mean, kid_std, subset = kid(real, fake, kid_subset_size, seed=seed)
    precision, recall = precision_recall(real, fake, k)
    density, coverage = density_coverage(real, fake, k)
    meaningful = min(n_real, n_fake) >= min_images
    note = None if meaningful else (f"too few images to be meaningful: {n_real} real, {n_fake} synthetic "
                                    f"(quality.min_images: {min_images}); KID subsets of {subset}")

    def value(metric: str, v: float, std: float | None = None) -> QualityValue:
        return QualityValue(class_name, metric, features, v, std, n_real, n_fake, reference, meaningful, note)

    return [value("fid", fid(real, fake)), value("kid", kid_mean, kid_std), value("precision", precision),
            value("recall", recall), value("density", density), value("coverage", coverage)]


def macro_average(values: list[QualityValue], classes: list[str] | None = None) -> list[QualityValue]:
    """Overall values (class '') per (metric, features, reference): the unweighted mean of the meaningful per-class
    values, with n_real and n_fake summed over the classes averaged; a note names the classes left out (too few
    images, or no value at all among `classes`)."""
    groups: dict[tuple, list[QualityValue]] = {}
    for v in values:
        if v.class_name:
            groups.setdefault((v.metric, v.features, v.reference), []).append(v)
    out = []
    for (metric, features, reference), parts in groups.items():
        used = [v for v in parts if v.meaningful]
        present = {v.class_name for v in parts}
        left_out = sorted({v.class_name for v in parts if not v.meaningful}
                          | {c for c in classes or [] if c not in present})
        source = used or parts  # with no meaningful class, the mean of all, marked not meaningful
        note = (f"macro-average of {len(used)} classes" if used
                else f"no class has enough images: mean of {len(parts)} classes, not meaningful")
        if left_out and used:
            note += f"; left out (too few images): {', '.join(left_out)}"
        out.append(QualityValue("", metric, features, float(np.mean([v.value for v in source])), None,
                                sum(v.n_real for v in source), sum(v.n_fake for v in source), reference,
                                bool(used), note))
    return out


def fixed_index(n_total: int, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a fixed-size random subset of range(n_total) (all of them if n_total <= n)."""
    if n_total <= n:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False))


def take_fixed(images: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A fixed-size random subset (all images if fewer): the N is recorded with every value computed on it."""
    return images[fixed_index(images.shape[0], n, seed)]
