"""Images in and out of generators: uint8 arrays <-> model tensors, sample grids, and reading sampled PNGs back.

A `sample` job writes `samples/<class>/<i:05d>.png` under its work folder and indexes each file as an artifact of
kind `sample`; `load_samples` reads them back in index order (for classifiers and image-quality metrics).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xaug.store.errors import DataError
from xaug.store.artifacts import artifact_path


def sample_path(work_dir: Path, class_name: str, index: int) -> Path:
    """Where sample `index` of a class is written inside a sample job's folder."""
    return artifact_path(work_dir, "samples", class_name, f"{index:05d}.png")


def load_samples(db, artifact_root: Path, sample_job_key: str, class_name: str, n: int | None = None) -> np.ndarray:
    """The first `n` (default all) samples of a class from a sample job, as uint8 [n, H, W] in index order."""
    from PIL import Image

    from xaug.store.artifacts import load_artifacts

    rows = load_artifacts(db, sample_job_key, kind="sample", class_name=class_name)
    rows.sort(key=lambda r: Path(r["path"]).name)
    if n is not None:
        if len(rows) < n:
            raise DataError(
                f"sample job {sample_job_key[:12]} has {len(rows)} samples of class '{class_name}', {n} requested; "
                "raise n_per_class of its sample job (the largest amount of the recipe) and run it again"
            )
        rows = rows[:n]
    images = []
    for row in rows:
        path = artifact_path(artifact_root, row["path"])
        try:
            with Image.open(path) as img:
                images.append(np.asarray(img.convert("L"), dtype=np.uint8))
        except OSError as exc:
            raise DataError(f"sample image {path} is unreadable ({exc}); re-run sample job {sample_job_key[:12]}") from exc
    if not images:
        return np.zeros((0, 0, 0), dtype=np.uint8)
    return np.stack(images)


def to_model_range(images: np.ndarray):
    """uint8 [N, H, W] -> float tensor [N, 1, H, W] in [-1, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).float().div(127.5).sub(1.0).unsqueeze(1)


def to_uint8(x) -> np.ndarray:
    """Float tensor [N, 1, H, W] in [-1, 1] -> uint8 [N, H, W] (clipped)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to("cpu").numpy().astype(np.uint8)[:, 0]


def make_grid(images: np.ndarray, class_names: list[str], pad: int = 2) -> np.ndarray:
    """Tile uint8 [n, H, W] images into one uint8 image: one row per class (in first-seen order), padded grey."""
    order = list(dict.fromkeys(class_names))
    rows = [[img for img, name in zip(images, class_names) if name == cls] for cls in order]
    cols = max(len(r) for r in rows)
    h, w = images.shape[1:3]
    grid = np.full((len(rows) * (h + pad) + pad, cols * (w + pad) + pad), 64, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            grid[y:y + h, x:x + w] = img
    return grid


def save_png(image: np.ndarray, path: Path) -> None:
    """Write a uint8 [H, W] image as a grey-scale PNG (atomically, so a killed job never leaves half a file)."""
    import os

    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(tmp)
    os.replace(tmp, path)
