"""Content fingerprints of a study's input files, so that a job's key depends on its data, not on where it lives.

- A dataset's fingerprint hashes, for every file the dataset reads, its path relative to the dataset (the folder,
  or the CSV file's folder), its size and its content hash: the class folders' images (folder source), or the CSV
  file plus every file it names below dataset.csv.image_root, rows that the row filters leave out included (csv
  source; a named file that is missing counts too, as missing). Row filters and label rules are in the config.
- The phantom has no files: its fingerprint is its config, which prepare_data's config already holds.
- A weights file's fingerprint is its content hash; a folder's (a local base model, a weights folder) hashes every
  non-hidden file below it like a dataset.

Each file is read once: its digest is cached in `<cache dir>/file-hashes.json` under (device, inode, size, mtime
in ns). Renaming or moving a folder on one file system keeps inodes and mtimes, so a moved dataset is not read
again; a file edited in place gets a new mtime and is hashed again; a copy that did not keep mtimes is hashed
again (slower, never a wrong key). The cache only saves time: deleting it is always safe.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from xaug.engine.errors import DataError
from xaug.engine.generators.registry import PATH_PARAMS
from xaug.engine.recipe.schema import DatasetConfig

HASH = "blake2b"
CACHE_FILE = "file-hashes.json"
_CACHE_FORMAT = 1


def cache_dir() -> Path:
    """Where the hash cache lives: `$XAUG_CACHE_DIR`, else `$XDG_CACHE_HOME/xaug`, else `~/.cache/xaug`."""
    if os.environ.get("XAUG_CACHE_DIR"):
        return Path(os.environ["XAUG_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "xaug"


def file_digest(path: Path) -> str:
    """`blake2b:<hex>` of a file's bytes (read in chunks)."""
    with open(path, "rb") as handle:
        return f"{HASH}:{hashlib.file_digest(handle, HASH).hexdigest()}"


class HashCache:
    """File digests keyed by (device, inode, size, mtime_ns); `save()` writes it back only if something was added."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else cache_dir() / CACHE_FILE
        self._entries = self._read()
        self._dirty = False
        self.hashed = 0
        """Files read and hashed by this cache object (the others came from the cache)."""

    def _read(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # no cache yet, or a broken one: it is only an optimisation
        return data.get("files", {}) if data.get("format") == _CACHE_FORMAT else {}

    def digest(self, path: Path) -> str:
        """The content digest of a file, from the cache when its stat is unchanged."""
        st = os.stat(path)
        entry_key = f"{st.st_dev}:{st.st_ino}"
        cached = self._entries.get(entry_key)
        if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return cached[2]
        digest = file_digest(path)
        self.hashed += 1
        self._entries[entry_key] = [st.st_size, st.st_mtime_ns, digest]
        self._dirty = True
        return digest

    def save(self) -> None:
        """Write the cache atomically (a concurrent writer may win: losing entries only costs re-hashing)."""
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, prefix=".hashes-", delete=False) as tmp:
                json.dump({"format": _CACHE_FORMAT, "files": self._entries}, tmp)
            os.replace(tmp.name, self.path)
            self._dirty = False
        except OSError:
            pass  # a read-only home: fingerprints still work, they are just recomputed next time


def _combine(entries: Iterable[tuple[str, int, str]]) -> str:
    """One digest of (relative name, size, digest) triples, independent of their order."""
    payload = json.dumps(sorted(entries), separators=(",", ":"), ensure_ascii=True)
    return f"{HASH}:{hashlib.blake2b(payload.encode()).hexdigest()}"


def _entry(name: str, path: Path, cache: HashCache) -> tuple[str, int, str]:
    if not path.is_file():
        return (name, -1, "missing")
    return (name, path.stat().st_size, cache.digest(path))


def tree_fingerprint(root: Path, cache: HashCache) -> str:
    """Fingerprint of every non-hidden file below a folder (relative path, size, content)."""
    root = Path(root)
    files = [p for p in root.rglob("*")
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return _combine(_entry(p.relative_to(root).as_posix(), p, cache) for p in files)


def path_fingerprint(path: Path, cache: HashCache) -> str | None:
    """Fingerprint of a weights file or folder; None when it does not exist (the key then keeps the path)."""
    path = Path(path)
    if path.is_file():
        return cache.digest(path)
    if path.is_dir():
        return tree_fingerprint(path, cache)
    return None


def dataset_fingerprint(cfg: DatasetConfig, path: Path, cache: HashCache) -> str:
    """Fingerprint of a folder or CSV dataset at the absolute `path` (see the module docstring)."""
    path = Path(path)
    if cfg.source == "folder":
        if not path.is_dir():
            raise DataError(f"{path}: dataset folder not found (dataset.path, source: folder); fix the path")
        from xaug.engine.data.folder import class_folders, class_images

        return _combine(_entry(p.relative_to(path).as_posix(), p, cache)
                        for class_dir in class_folders(path) for p in class_images(class_dir))
    if cfg.source == "csv":
        if not path.is_file():
            raise DataError(f"{path}: dataset CSV file not found (dataset.path, source: csv); fix the path")
        from xaug.engine.data.csvtable import image_path, image_root

        entries = [_entry(path.name, path, cache)]
        root = image_root(path, cfg.csv)
        for named in _csv_named_files(path, cfg.csv.path_column):
            file = image_path(root, named)
            entries.append(_entry(_relative_name(file, path.parent), file, cache))
        return _combine(entries)
    raise ValueError(f"dataset source {cfg.source!r} has no files to fingerprint")


def _csv_named_files(table: Path, column: str) -> list[str]:
    """The non-empty cells of the CSV's path column (a broken CSV names none: prepare_data reports it)."""
    try:
        with open(table, newline="", encoding="utf-8-sig") as handle:
            cells = [(row.get(column) or "").strip() for row in csv.DictReader(handle)]
    except (UnicodeDecodeError, csv.Error):
        return []
    return [cell for cell in cells if cell]


def _relative_name(file: Path, root: Path) -> str:
    """A file's name relative to the dataset root, or its absolute path when it lies outside (it does not move)."""
    try:
        return file.relative_to(root).as_posix()
    except ValueError:
        return str(file)


@dataclass(frozen=True)
class InputFingerprints:
    """Content fingerprints of the input files a recipe names, by the absolute path the planner writes in configs."""

    by_path: Mapping[str, str] = field(default_factory=dict)
    """Absolute path (as in a job config) -> `blake2b:<hex>` of what lies there."""


def fingerprint_inputs(loaded, cache: HashCache | None = None) -> InputFingerprints:
    """Fingerprint the dataset, classifier weights, generators' local files (PATH_PARAMS: base models, pipelines,
    LoRA weights) and Inception weights that a recipe names."""
    recipe = loaded.recipe
    cache = cache or HashCache()
    by_path: dict[str, str] = {}
    if recipe.dataset.source != "phantom" and recipe.dataset.path is not None:
        where = loaded.resolve(recipe.dataset.path)
        by_path[str(where)] = dataset_fingerprint(recipe.dataset, where, cache)
    others = [spec.weights for spec in recipe.classifiers] + [recipe.quality.inception_weights]
    others += [gen.params[name] for gen in recipe.generators for name in PATH_PARAMS
               if isinstance(gen.params.get(name), str)]
    for relative in others:
        where = loaded.resolve(relative)
        if where is not None and str(where) not in by_path:
            digest = path_fingerprint(where, cache)
            if digest is not None:
                by_path[str(where)] = digest
    cache.save()
    return InputFingerprints(by_path)
