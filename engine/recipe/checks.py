"""Checks across fields that a schema cannot express: unique names, known models, existing paths."""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

from xaug.engine.generators.registry import suggest
from xaug.engine.recipe.schema import CLASS_NAMES_PAPER
from xaug.store.errors import XaugError

if TYPE_CHECKING:
    from xaug.engine.recipe.loader import LoadedRecipe, Loc


def semantic_problems(loaded: "LoadedRecipe") -> list[tuple["Loc", str]]:
    """Every cross-field problem of a schema-valid recipe as (location, message) pairs."""
    return [
        *_duplicate_names(loaded),
        *_dataset_problems(loaded),
        *_split_problems(loaded),
        *_amount_problems(loaded),
        *_path_problems(loaded),
        *_generator_params_problems(loaded),
        *_multi_gpu_problems(loaded),
    ]


def _duplicate_names(loaded):
    recipe = loaded.recipe
    for section, names in (("generators", [g.name for g in recipe.generators]),
                           ("classifiers", [c.id for c in recipe.classifiers])):
        for name, count in Counter(names).items():
            if count > 1:
                index = names.index(name, names.index(name) + 1)
                yield (section, index, "name"), f"'{name}' is used {count} times; give each entry a unique name"
    for seed, count in Counter(recipe.seeds).items():
        if count > 1:
            yield ("seeds",), f"seed {seed} is listed {count} times"


def _dataset_problems(loaded):
    dataset = loaded.recipe.dataset
    if dataset.source == "phantom":
        for i, name in enumerate(dataset.classes or []):
            if name not in CLASS_NAMES_PAPER:
                yield ("dataset", "classes", i), (
                    f"the phantom has no class '{name}'.{suggest(name, list(CLASS_NAMES_PAPER))}"
                    f" Phantom classes: {', '.join(CLASS_NAMES_PAPER)}")
    elif dataset.path is None:
        yield ("dataset", "path"), f"source '{dataset.source}' needs a path (a folder or a CSV file)"
    else:
        path = loaded.resolve(dataset.path)
        if not path.exists():
            yield ("dataset", "path"), f"{path} does not exist"
        elif dataset.source == "folder" and not path.is_dir():
            yield ("dataset", "path"), f"{path} is not a folder (source: folder wants one sub-folder per class)"
        elif dataset.source == "folder":
            yield from _patient_id_problems(dataset, path)
        elif dataset.source == "csv" and not path.is_file():
            yield ("dataset", "path"), f"{path} is not a file (source: csv wants a CSV file)"
        elif dataset.source == "csv":
            yield from _csv_column_problems(dataset, path)
    yield from _subsample_problems(dataset)
    if dataset.one_patient_per_image and dataset.source != "folder":
        yield ("dataset", "one_patient_per_image"), (
            f"applies to source: folder only; source '{dataset.source}' has its own patient ids")
    if dataset.classes is not None and len(set(dataset.classes)) < 2:
        yield ("dataset", "classes"), "a study needs at least two distinct classes"
    if dataset.patient_pattern is not None:
        try:
            groups = re.compile(dataset.patient_pattern).groups
        except re.error as exc:
            yield ("dataset", "patient_pattern"), f"not a valid regular expression: {exc}"
        else:
            if groups != 1:
                yield ("dataset", "patient_pattern"), f"needs exactly one (group) for the patient id, has {groups}"


def _csv_column_problems(dataset, path):
    """Every column the recipe names must be in the CSV's header: read the header only, not the rows."""
    from xaug.engine.data.csvtable import missing_columns, read_header

    header = read_header(path)
    if not header:
        yield ("dataset", "path"), f"{path}: not a readable CSV file with a header row"
        return
    for loc, column in missing_columns(header, dataset.csv):
        yield ("dataset", "csv", *loc), f"{path} has no column {column!r}; its header has {header}"


def _subsample_problems(dataset):
    subsample = dataset.subsample
    if dataset.external_test and subsample is None:
        yield ("dataset", "external_test"), (
            "needs dataset.subsample: the external test set is the images the subsample does not draw")
    if dataset.external_test_per_class is not None and not dataset.external_test:
        yield ("dataset", "external_test_per_class"), "applies only with dataset.external_test: true"
    if subsample is not None and subsample.per_class is not None and dataset.classes is not None:
        for name in subsample.per_class:
            if name not in dataset.classes:
                yield ("dataset", "subsample", "per_class", name), (
                    f"'{name}' is not in dataset.classes.{suggest(name, list(dataset.classes))}"
                    f" Classes: {', '.join(dataset.classes)}")


def _patient_id_problems(dataset, path):
    """The leakage guard: a folder of PNG/JPEG files needs patient ids, or an explicit one-patient-per-image."""
    from xaug.engine.data.folder import first_file_without_patient_id

    if dataset.patient_pattern is not None:
        if dataset.one_patient_per_image:
            yield ("dataset", "one_patient_per_image"), (
                "contradicts dataset.patient_pattern (which groups images by patient); remove one of the two")
        return
    if dataset.one_patient_per_image:
        return
    example = first_file_without_patient_id(path)
    if example is not None:
        yield ("dataset", "patient_pattern"), (
            f"not set, and {example} (like any PNG/JPEG file) carries no patient id, so images of one patient could"
            " land in both the training and the test split. Set dataset.patient_pattern to a regular expression"
            r" whose one group extracts the patient id from file names (e.g. '^(P\d+)_'), or set"
            " dataset.one_patient_per_image: true if every image is a different patient")


def _split_problems(loaded):
    splits = loaded.recipe.splits
    for i, fold in enumerate(splits.run_folds or []):
        if not 0 <= fold < splits.folds:
            yield ("splits", "run_folds", i), f"fold {fold} does not exist: folds are 0..{splits.folds - 1}"


def _amount_problems(loaded):
    recipe = loaded.recipe
    for i, amount in enumerate(recipe.amounts):
        if amount < 0:
            yield ("amounts", i), f"amount {amount} is negative: amounts are images added per class"
    for g, gen in enumerate(recipe.generators):
        for i, amount in enumerate(gen.amounts or []):
            if amount < 0:
                yield ("generators", g, "amounts", i), f"amount {amount} is negative"
        if not recipe.amounts_for(gen):
            yield ("generators", g, "name"), (
                f"generator '{gen.name}' would never be used: no positive amount (add e.g. 100 to amounts)")


def model_problems(loaded) -> list[tuple["Loc", str]]:
    """Classifier names timm does not know. Not part of loading (importing timm imports torch, and loading a recipe
    imports no model library): `check_models` runs it at `xaug recipe check`, plan and submit."""
    return list(_classifier_problems(loaded))


def _classifier_problems(loaded):
    import timm

    known = None
    for i, spec in enumerate(loaded.recipe.classifiers):
        if spec.model in timm.list_models():
            continue
        known = known or timm.list_models()
        yield ("classifiers", i, "model"), (
            f"timm has no model '{spec.model}'.{suggest(spec.model, known)}"
            " See timm.list_models() for the names")


def _path_problems(loaded):
    recipe = loaded.recipe
    for i, spec in enumerate(recipe.classifiers):
        if spec.weights is not None and not loaded.resolve(spec.weights).exists():
            yield ("classifiers", i, "weights"), f"{loaded.resolve(spec.weights)} does not exist"
    if recipe.quality.inception_weights is not None:
        path = loaded.resolve(recipe.quality.inception_weights)
        if not path.exists():
            yield ("quality", "inception_weights"), f"{path} does not exist"


def _generator_params_problems(loaded):
    """What a generator's params model finds wrong with the files it names (its optional `recipe_problems`, e.g.
    pretrained_pipeline's folders), so that a missing one fails here rather than in a queued job."""
    from pydantic import ValidationError

    from xaug.engine.generators.registry import params_class

    for g, gen in enumerate(loaded.recipe.generators):
        try:
            params = params_class(gen.model).model_validate(gen.params)
        except (KeyError, ValidationError):
            continue  # reported by the params validation
        check = getattr(params, "recipe_problems", None)
        if check is not None:
            for loc, message in check(loaded.resolve, _classes_or_none(loaded), gen.per_class):
                yield ("generators", g, "params", *loc), message


def _classes_or_none(loaded) -> list[str] | None:
    """The study's classes, or None when the dataset cannot be read (a problem reported on its own)."""
    from xaug.engine.planner import study_classes

    try:
        return study_classes(loaded)
    except (OSError, KeyError, ValueError, XaugError):  # a CSV problem is a DataError, reported on its own
        return None


def _multi_gpu_problems(loaded):
    """A generator trained on N GPUs splits its batch_size evenly over them (see generators/distributed.py)."""
    from pydantic import ValidationError

    from xaug.engine.generators.registry import get_generator

    resources = loaded.recipe.resources
    n = resources.generator_gpus
    if resources.device == "cpu" or n < 2:
        return
    for g, gen in enumerate(loaded.recipe.generators):
        try:
            entry = get_generator(gen.model)
            batch = entry.config_class.model_validate(gen.params).batch_size
        except (KeyError, ValidationError):
            continue  # reported by the params validation
        if entry.distributed and batch % n:
            yield ("generators", g, "params", "batch_size"), (
                f"batch_size {batch} of '{gen.name}' does not split over resources.generator_gpus {n}: it is the "
                f"global batch, divided evenly over the GPUs; use a multiple of {n}")
