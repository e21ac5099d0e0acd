"""One entry point over the data sources: list a dataset's records, and decode any one record's pixels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from xaug.engine.data.csvtable import load_csv
from xaug.engine.data.folder import load_folder
from xaug.engine.data.images import read_image
from xaug.engine.data.phantom import phantom_records, render_source
from xaug.engine.data.records import ImageRecord, RecordSet
from xaug.engine.recipe.schema import DatasetConfig


def load_records(cfg: DatasetConfig) -> RecordSet:
    """The records of a dataset (phantom, folder or CSV), in a stable order, with its class order."""
    if cfg.source == "phantom":
        return phantom_records(cfg.phantom, cfg.classes)
    if cfg.source == "folder":
        return load_folder(cfg)
    return load_csv(cfg)


def check_dataset(loaded) -> RecordSet:
    """The records of a recipe's dataset, with its folds made once as a trial, without decoding a pixel.

    Every data problem a user can fix before anything is queued (a missing file or column, an unknown or unsafe
    label, a patient in two classes, a class with fewer patients than folds, an unreadable DICOM header) is a
    DataError here, at `xaug recipe check` and at submit, instead of a failed prepare_data job later.
    """
    from xaug.engine.data.splits import make_repeated_folds

    record_set = load_records(loaded.dataset)
    classes = record_set.classes
    make_repeated_folds([r.patient_id for r in record_set.records],
                        [classes.index(r.label) for r in record_set.records], classes, loaded.recipe.splits)
    return record_set


def record_decoder(cfg: DatasetConfig) -> Callable[[ImageRecord], np.ndarray]:
    """A function that decodes one record of this dataset to a 2-D uint8 image (DataError if it cannot)."""
    if cfg.source == "phantom":
        return lambda record: render_source(cfg.phantom, record.source)
    return lambda record: read_image(record.source)


def image_sources(cfg: DatasetConfig) -> dict[str, str]:
    """image_id -> source file, to find the file behind an id (ids never contain file names themselves)."""
    return {record.image_id: record.source for record in load_records(cfg).records}
