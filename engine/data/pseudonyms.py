"""How a dataset's file paths appear in anything xaug stores (skipped images, job errors, index.json).

File names often carry patient ids (which is why `dataset.patient_pattern` exists), and folder names may carry
more. A stored path is therefore relative to the dataset's root (the folder, or the CSV's image root) and:

- when `dataset.patient_pattern` finds the patient id in the file name, that id is replaced by its pseudonym and the
  rest of the path is kept (`viral/P0042_pa.png` -> `viral/3f9a..._pa.png`);
- otherwise the file's name and its folders below the class folder are replaced by a keyed hash of its relative
  path (`viral/file-8c1e....dcm`; a CSV row's message keeps its row number, which finds the file). A file outside
  the root (an absolute path in a CSV) is hashed whole, folders and all.

A CSV row named by its place (`meta.csv, row 7`) names no file and is kept as it is.

Pseudonyms and hashes use the store's pseudonym key (store/studies.py), so the key's holder can recompute them for
a file, and nobody else can.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from xaug.engine.data.csvtable import image_root
from xaug.engine.data.folder import compile_patient_pattern
from xaug.engine.recipe.schema import DatasetConfig


class PrivatePaths:
    """Turns paths below a dataset's root into their stored form, and scrubs them out of messages."""

    def __init__(self, cfg: DatasetConfig, pseudonymise: Callable[[str], str]):
        self.pseudonymise = pseudonymise
        self._table = Path(cfg.path).absolute() if cfg.source == "csv" and cfg.path else None
        if cfg.source == "folder" and cfg.path:
            self.root: Path | None = Path(cfg.path).absolute()
        else:
            self.root = image_root(self._table, cfg.csv).absolute() if self._table is not None else None
        self._pattern = compile_patient_pattern(cfg.patient_pattern) if cfg.source == "folder" else None
        self._keeps_class_folder = cfg.source == "folder"

    def name(self, source: str) -> str:
        """The stored form of one file path (a phantom source, which names no file, is kept as it is)."""
        if self.root is None or source.startswith("phantom:"):
            return source
        path = Path(source)
        if self._table is not None and (path.absolute() == self._table or source.startswith(f"{self._table.name}, ")):
            return path.name  # the metadata table, or one of its rows: no patient's name
        try:
            relative = PurePosixPath(path.absolute().relative_to(self.root).as_posix())
        except ValueError:  # a CSV may name files anywhere: all of such a path is hashed
            relative = PurePosixPath(path.absolute().as_posix())
        match = self._pattern.search(relative.name) if self._pattern is not None else None
        if match is not None and match.group(1):
            name = relative.name
            hidden = name[:match.start(1)] + self.pseudonymise(match.group(1)) + name[match.end(1):]
            return str(relative.with_name(hidden))
        kept = relative.parts[:1] if self._keeps_class_folder and len(relative.parts) > 1 else ()
        return "/".join((*kept, f"file-{self.pseudonymise(str(relative))}{relative.suffix}"))

    def scrub(self, text: str) -> str:
        """`text` with every path below the dataset's root replaced by its stored form."""
        if self.root is None:
            return text
        # A path in a message ends before white space, quotes, brackets or separators, and not on a '.' or ':'.
        below_root = re.compile(re.escape(str(self.root)) + r"/[^\s'\"(),;]*[^\s'\"(),;.:]")
        return below_root.sub(lambda match: self.name(match.group(0)), text)
