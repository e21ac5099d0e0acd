"""A prepared dataset: every image decoded and letterboxed once, cached as one array, with the folds.

Layout of the output folder:

- `images.npy`: uint8 [N, S, S], S = dataset.image_size, loaded memory-mapped;
- `index.json`: classes, per-image labels (class indices), image ids (`<class>/<n:05d>`), patient pseudonyms
  (never the raw ids), folds (per repetition of the k-fold split, per fold: image indices of train/val/test),
  skipped files, and the configs it was made from; with dataset.subsample, the draw per class (`subsample`) and,
  with dataset.external_test, the indices of the images not drawn (`external`), which are in no fold.

`index.json` is written last, so its presence means the folder is complete: preparing again with the same
configs reuses the files without decoding anything.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from xaug.engine.data.images import fit_square
from xaug.engine.data.pseudonyms import PrivatePaths
from xaug.engine.data.records import handle_unreadable
from xaug.engine.data.sources import load_records, record_decoder
from xaug.engine.data.splits import EXTERNAL, SPLIT_NAMES, Fold, make_repeated_folds
from xaug.engine.data.subsample import study_and_external
from xaug.store.errors import DataError
from xaug.engine.recipe.schema import DatasetConfig, SplitsConfig

INDEX_FORMAT = 2
"""2: `folds` is a list per repetition (repeated k-fold); a folder of format 1 is prepared again."""
_CHECK_ID = "xaug:pseudonym-check"


@dataclass
class PrepareReport:
    """What `prepare_dataset` did."""

    n_images: int
    classes: list[str]
    class_counts: dict[str, int]
    folds: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    repeats: int = 1
    """(source, reason) of each file that could not be read and was skipped."""
    reused: bool = False
    """True when the folder already held this preparation and nothing was decoded."""
    seconds: float = 0.0
    subsample: list[dict] = field(default_factory=list)
    """dataset.subsample's draw per class: class_name, target, available/selected images and patients."""
    n_external: int = 0
    """Images of the external test set (dataset.external_test), not counted in n_images."""


@dataclass
class PreparedData:
    """A prepared dataset, images memory-mapped."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    image_ids: list[str]
    patients: list[str]
    """Patient pseudonyms, one per image."""
    repeats: list[list[Fold]]
    """The folds of each repetition of the k-fold split: repeats[repeat][fold]."""
    skipped: list[tuple[str, str]]
    external: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """Indices of the external test set's images (dataset.external_test); in no fold."""

    @property
    def folds(self) -> list[Fold]:
        """The folds of the first repetition (the only one unless splits.repeats > 1)."""
        return self.repeats[0]

    def split(self, fold: int, name: str, repeat: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Images uint8 [n, S, S] and labels int64 [n] of split 'train', 'val' or 'test' of a fold (of one
        repetition of the k-fold split), or of the external test set ('external', the same for every fold)."""
        if name == EXTERNAL:
            return np.asarray(self.images[self.external]), self.labels[self.external]
        if not 0 <= repeat < len(self.repeats):
            raise IndexError(f"repeat {repeat} does not exist; this dataset has repeats 0..{len(self.repeats) - 1}")
        folds = self.repeats[repeat]
        if not 0 <= fold < len(folds):
            raise IndexError(f"fold {fold} does not exist; this dataset has folds 0..{len(folds) - 1}")
        idx = folds[fold].indices(name)
        return np.asarray(self.images[idx]), self.labels[idx]

    def train_images(self, fold: int, repeat: int = 0):
        """The training split of a fold (of one repetition) as the generators' `TrainImages`."""
        from xaug.engine.generators.base import TrainImages

        images, labels = self.split(fold, "train", repeat)
        return TrainImages(images, labels, list(self.classes))

    def split_members(self) -> list[dict]:
        """Rows for the store's split_members: repeat, fold, split, image_id, patient (pseudonym), label."""
        return [
            {"repeat": r, "fold": k, "split": name, "image_id": self.image_ids[i], "patient": self.patients[i],
             "label": self.classes[self.labels[i]]}
            for r, folds in enumerate(self.repeats) for k, fold in enumerate(folds)
            for name in SPLIT_NAMES for i in fold.indices(name)
        ]

    def external_members(self) -> list[dict]:
        """Rows for the store's external_members: image_id, patient (pseudonym), label."""
        return [{"image_id": self.image_ids[i], "patient": self.patients[i], "label": self.classes[self.labels[i]]}
                for i in self.external]


def prepare_dataset(dataset_cfg: DatasetConfig, splits_cfg: SplitsConfig, out_dir: str | Path, *,
                    pseudonymise: Callable[[str], str] | None = None,
                    progress: Callable[[float, float], None] | None = None) -> PrepareReport:
    """Decode and letterbox every image once into `out_dir`, make the folds, and write images.npy + index.json.

    `pseudonymise` maps a raw patient id to the pseudonym written to index.json (the store's keyed HMAC);
    without it a random key is used. `progress(done, total)` is called while decoding. Paths of skipped files and
    of files named in a DataError are made private (engine/data/pseudonyms.py): both end up in the store.
    """
    private = PrivatePaths(dataset_cfg, pseudonymise or _random_pseudonymiser())
    try:
        return _prepare(dataset_cfg, splits_cfg, Path(out_dir), pseudonymise, private, progress)
    except DataError as exc:
        raise DataError(private.scrub(str(exc))) from None  # the raw message names files: not even in the log
    except OSError as exc:  # e.g. a dataset file this user may not read
        where = str(exc.filename or "")
        if not where or private.scrub(where) == where:
            raise  # not a dataset file (the artifact folder, say): a failure the engine may retry
        raise DataError(f"{private.scrub(where)}: cannot read it ({exc.strerror})") from None


def _prepare(dataset_cfg: DatasetConfig, splits_cfg: SplitsConfig, out: Path, pseudonymise,
             private: PrivatePaths, progress) -> PrepareReport:
    """prepare_dataset's work, with raw paths in its errors."""
    start = time.monotonic()
    configs = {"dataset": dataset_cfg.model_dump(mode="json"), "splits": splits_cfg.model_dump(mode="json")}
    reused = _reusable_index(out, configs, pseudonymise)
    if reused is not None:
        return _report(reused, reused=True, seconds=time.monotonic() - start)

    record_set = load_records(dataset_cfg)
    skipped = list(record_set.skipped)
    classes = record_set.classes
    draw = study_and_external(record_set.records, classes, dataset_cfg)
    study, external = [record_set.records[i] for i in draw.selected], [record_set.records[i] for i in draw.rest]
    images, kept = _decode_all(dataset_cfg, study + external, skipped, progress)
    study_ids = {r.image_id for r in study}
    n_study = sum(r.image_id in study_ids for r in kept)
    if not n_study:
        raise DataError(f"dataset: none of the {len(study)} images could be read; see the skipped list")
    labels = np.array([classes.index(r.label) for r in kept], dtype=np.int64)
    # Decoding keeps the order, so the study's images come first and the external test set's after them.
    repeats = make_repeated_folds([r.patient_id for r in kept[:n_study]], labels[:n_study], classes, splits_cfg)
    pseudo = private.pseudonymise
    index = {
        "format": INDEX_FORMAT, "config": configs, "image_size": dataset_cfg.image_size, "classes": classes,
        "labels": labels.tolist(), "image_ids": [r.image_id for r in kept],
        "patients": [pseudo(r.patient_id) for r in kept], "pseudonym_check": pseudo(_CHECK_ID),
        "folds": [[{name: fold.indices(name).tolist() for name in SPLIT_NAMES} for fold in folds]
                  for folds in repeats],
        "skipped": [[private.name(source), private.scrub(reason)] for source, reason in skipped],
        "subsample": [asdict(d) for d in draw.draws], "external": list(range(n_study, len(kept))),
    }
    _write_outputs(out, images, index)
    return _report(index, reused=False, seconds=time.monotonic() - start)


def load_prepared(out_dir: str | Path) -> PreparedData:
    """Open a prepared dataset (images memory-mapped); DataError if the folder is incomplete."""
    out = Path(out_dir)
    index = _read_index(out)
    if index is None:
        raise DataError(f"{out}: no prepared dataset here (index.json or images.npy missing); run prepare_data first")
    images = np.load(out / "images.npy", mmap_mode="r")
    repeats = [[Fold(*(np.asarray(f[name], dtype=np.int64) for name in SPLIT_NAMES)) for f in folds]
               for folds in index["folds"]]
    return PreparedData(images=images, labels=np.asarray(index["labels"], dtype=np.int64),
                        classes=list(index["classes"]), image_ids=list(index["image_ids"]),
                        patients=list(index["patients"]), repeats=repeats,
                        skipped=[tuple(s) for s in index.get("skipped", [])],
                        external=np.asarray(index.get("external", []), dtype=np.int64))


def _decode_all(cfg: DatasetConfig, records, skipped: list, progress) -> tuple[np.ndarray, list]:
    """Decode + letterbox every record into one array; unreadable ones follow dataset.on_unreadable."""
    decode = record_decoder(cfg)
    size, total = cfg.image_size, len(records)
    images = np.empty((total, size, size), dtype=np.uint8)
    kept = []
    every = max(1, total // 100)
    for i, record in enumerate(records):
        try:
            images[len(kept)] = fit_square(decode(record), size)
            kept.append(record)
        except DataError as exc:
            handle_unreadable(record.source, str(exc).removeprefix(f"{record.source}: "), cfg.on_unreadable, skipped)
        if progress is not None and ((i + 1) % every == 0 or i + 1 == total):
            progress(i + 1, total)
    return images[: len(kept)], kept


def _write_outputs(out: Path, images: np.ndarray, index: dict) -> None:
    """images.npy then index.json, each through a temporary file and an atomic rename."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.json").unlink(missing_ok=True)  # the folder is incomplete until the new index lands
    tmp = out / "images.tmp.npy"
    np.save(tmp, images)
    os.replace(tmp, out / "images.npy")
    tmp_index = out / "index.json.tmp"
    tmp_index.write_text(json.dumps(index, separators=(",", ":")))
    os.replace(tmp_index, out / "index.json")


def _read_index(out: Path) -> dict | None:
    """index.json of a complete preparation, or None."""
    path = out / "index.json"
    if not path.is_file() or not (out / "images.npy").is_file():
        return None
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return index if index.get("format") == INDEX_FORMAT else None


def _reusable_index(out: Path, configs: dict, pseudonymise) -> dict | None:
    """The existing index if it was made from the same configs (and pseudonyms), else None."""
    index = _read_index(out)
    if index is None or index.get("config") != configs:
        return None
    if pseudonymise is not None and index.get("pseudonym_check") != pseudonymise(_CHECK_ID):
        return None
    images = np.load(out / "images.npy", mmap_mode="r")
    size = configs["dataset"]["image_size"]
    return index if images.shape == (len(index["labels"]), size, size) else None


def _report(index: dict, reused: bool, seconds: float) -> PrepareReport:
    """A PrepareReport from an index (new or reused)."""
    n_external = len(index.get("external", []))
    study_labels = np.asarray(index["labels"][: len(index["labels"]) - n_external], dtype=np.int64)
    counts = np.bincount(study_labels, minlength=len(index["classes"]))
    return PrepareReport(n_images=len(study_labels), classes=list(index["classes"]),
                         class_counts={c: int(n) for c, n in zip(index["classes"], counts)},
                         folds=len(index["folds"][0]), skipped=[tuple(s) for s in index["skipped"]],
                         reused=reused, seconds=seconds, repeats=len(index["folds"]),
                         subsample=list(index.get("subsample", [])), n_external=n_external)


def _random_pseudonymiser() -> Callable[[str], str]:
    """HMAC-SHA256 pseudonyms under a throw-away salt: consistent within one preparation, linkable to nothing."""
    from xaug.store.studies import pseudonymise

    salt = secrets.token_bytes(16)
    return lambda patient_id: pseudonymise(salt, patient_id)
