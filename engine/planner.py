"""The planner: a validated recipe -> the DAG of jobs of its study (see engine/jobs/README.md).

Planning is pure: the same recipe always gives the same jobs with the same content-hash keys, so a job already
done in the store is reused, and a recipe with one more classifier adds only that classifier's jobs.

Conventions (documented here because they change keys):
- Generators train, sample and are scored with the study's first seed; classifiers run on every seed.
- With repeated k-fold (`splits.repeats` > 1) every job of a fold carries `repeat` and each repetition trains its
  own generators on its own partition; with one repeat the field is absent and keys are as without repeats.
- `splits.run_folds` is left out of `prepare_data`'s config (it prepares every fold), so running fewer folds
  reuses the same data; a generator's `amounts` are left out of its dump (amounts show up as `amount` and
  `n_per_class`), so adding an amount does not retrain the generator.
- With `dataset.external_test`, every trained classifier gets a second `evaluate` job whose config adds
  `test_set: external`; the first one's config (and key) is as without it.
- Dataset options added after keys were first made (`_KEYED_WHEN_SET`) are left out of prepare_data's config while
  at their default, so a study that does not use them keeps its keys.
- Jobs are returned in dependency order; the queue runs equal priorities oldest first, i.e. in this order.
- Keys are content-addressed: a config keeps the absolute paths its worker reads (LOCATION_FIELDS), but the key
  hashes the fingerprint of what lies there (`loaded.fingerprints`, computed before planning), plus the kind's
  code version (JOB_VERSIONS). Moving the dataset reuses every job; editing one image changes prepare_data's key
  and therefore every key downstream of it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from xaug.engine.data.csvtable import load_csv
from xaug.engine.data.splits import EXTERNAL
from xaug.engine.generators.registry import PATH_PARAMS, get_generator
from xaug.engine.jobs import JOB_VERSIONS
from xaug.engine.recipe.schema import CLASS_NAMES_PAPER, ClassifierSpec, DatasetConfig, GeneratorSpec, Recipe

BASELINE_PRIORITY = 1

KIND_ORDER = ("prepare_data", "train_generator", "sample", "image_quality", "train_classifier", "evaluate", "analyse")


@dataclass(frozen=True)
class PlannedJob:
    """One job of a study: what to run, with which config, after which jobs; `key` identifies it everywhere."""

    kind: str
    label: str
    config: dict[str, Any]
    deps: tuple[str, ...]
    key: str
    priority: int = 0
    gpus_needed: int = 0
    max_attempts: int = 3
    gpu_memory_mb: float | None = None
    """GPU memory declared for the job (recipe `resources.gpu_memory_gb`): the scheduler may share a GPU with it."""
    memory_group: str | None = None
    """Set when its memory is to be measured: jobs of one group (kind + model spec) use about the same memory, so
    the peak measured on a done one sizes the next (engine/queue/policy.py)."""


# Config fields that say where an input lives (absolute paths, for the worker). The key never sees these paths:
# it sees the fingerprint of the file or folder there (see engine/jobs/README.md, "Keys").
LOCATION_FIELDS = (
    ("dataset", "path"),
    ("classifier", "weights"),
    *(("generator", "params", name) for name in PATH_PARAMS),
    ("quality", "inception_weights"),
)


def key_view(config: dict[str, Any], fingerprints: Mapping[str, str]) -> dict[str, Any]:
    """The config as its key sees it: each location field's path replaced by the fingerprint of what lies there.

    A path without a fingerprint (a hub repo id, a file that is not there yet) stays as it is.
    """
    view = config
    for where in LOCATION_FIELDS:
        value = _field(config, where)
        if isinstance(value, str) and value in fingerprints:
            view = _with_field(view, where, fingerprints[value])
    return view


def _field(config: dict[str, Any], where: tuple[str, ...]) -> Any:
    for name in where:
        if not isinstance(config, dict):
            return None
        config = config.get(name)
    return config


def _with_field(config: dict[str, Any], where: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of config with the nested field set (only the dicts along the way are copied)."""
    head, *rest = where
    return {**config, head: _with_field(config[head], tuple(rest), value) if rest else value}


def job_key(kind: str, config: dict[str, Any], deps: Iterable[str],
            fingerprints: Mapping[str, str] | None = None) -> str:
    """The content hash of a job: sha256 of canonical JSON of kind, its code version, its config's key view
    (paths replaced by fingerprints) and sorted dependency keys."""
    payload = json.dumps({"kind": kind, "version": JOB_VERSIONS.get(kind, 0),
                          "config": key_view(config, fingerprints or {}), "deps": sorted(deps)},
                         sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def make_job(kind: str, config: dict[str, Any], deps: Iterable[str] = (), *, label: str | None = None,
             priority: int = 0, gpus_needed: int = 0, max_attempts: int = 3,
             fingerprints: Mapping[str, str] | None = None, gpu_memory_mb: float | None = None,
             memory_group: str | None = None) -> PlannedJob:
    """A PlannedJob with its key computed (used by the planner, benchmarks and tests)."""
    deps = tuple(sorted(set(deps)))
    return PlannedJob(kind=kind, label=label or kind, config=config, deps=deps,
                      key=job_key(kind, config, deps, fingerprints), priority=priority, gpus_needed=gpus_needed,
                      max_attempts=max_attempts, gpu_memory_mb=gpu_memory_mb, memory_group=memory_group)


# Config fields that decide how much GPU memory a job uses: its model spec (a dict: model, batch size...), image
# size and precision. The fold, seed, arm, amount and a classifier arm's generator *name* do not.
MEMORY_SPECS = ("classifier", "generator", "quality")
MEMORY_SCALARS = ("image_size", "amp")


def memory_group(kind: str, config: dict[str, Any]) -> str:
    """The group of jobs expected to use the same GPU memory: the kind and a hash of its memory fields."""
    spec = {name: config[name] for name in MEMORY_SPECS if isinstance(config.get(name), dict)}
    spec |= {name: config[name] for name in MEMORY_SCALARS if name in config}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]
    return f"{kind}:{digest}"


def gpu_memory_settings(recipe: Recipe, kind: str, config: dict[str, Any], gpus: int) -> dict[str, Any]:
    """`gpu_memory_mb` and `memory_group` of a job from the recipe's `resources.gpu_memory_gb` (none for CPU jobs
    and kinds not listed: they take their GPUs whole)."""
    setting = recipe.resources.gpu_memory_gb.get(kind) if gpus else None
    if setting is None:
        return {}
    if setting == "measured":
        return {"memory_group": memory_group(kind, config)}
    return {"gpu_memory_mb": float(setting) * 1024.0}


@dataclass
class _Plan:
    """Jobs collected while planning, in dependency order, without duplicates."""

    jobs: list[PlannedJob] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, job: PlannedJob) -> PlannedJob:
        if job.key not in self.seen:
            self.seen.add(job.key)
            self.jobs.append(job)
        return job


def plan_study(loaded) -> list[PlannedJob]:
    """The study's jobs for a `LoadedRecipe`, dependencies first; keys are stable content hashes."""
    recipe: Recipe = loaded.recipe
    fingerprints = loaded.fingerprints.by_path
    classes = study_classes(loaded)
    folds = list(recipe.splits.run_folds) if recipe.splits.run_folds else list(range(recipe.splits.folds))
    gpu = recipe.resources.device != "cpu"
    generator_gpus = recipe.resources.generator_gpus if gpu else 0
    classifier_gpus = recipe.resources.classifier_gpus if gpu else 0
    attempts = recipe.resources.max_attempts
    plan = _Plan()
    test_sets = ["test", EXTERNAL] if recipe.dataset.external_test else ["test"]

    def add(kind, config, deps, label, gpus, priority=0):
        return plan.add(make_job(kind, config, deps, label=label, gpus_needed=gpus, max_attempts=attempts,
                                 priority=priority, fingerprints=fingerprints,
                                 **gpu_memory_settings(recipe, kind, config, gpus)))

    prepare = add("prepare_data", _prepare_config(loaded), (), f"prepare_data {recipe.dataset.source}", 0,
                  BASELINE_PRIORITY)
    final_deps: list[str] = []
    for where in _units(recipe, folds):
        samples: dict[str, PlannedJob] = {}
        feature_deps = _feature_extractor_deps(loaded, where, classes, prepare, classifier_gpus, add)
        for gen in recipe.generators:
            amounts = recipe.amounts_for(gen)
            if not amounts:
                continue
            sample = _plan_generator(add, loaded, gen, where, classes, max(amounts), prepare, generator_gpus,
                                     final_deps, feature_deps)
            samples[gen.name] = sample
        for spec in recipe.classifiers:
            for seed in recipe.seeds:
                for arm, gen, amount in _arms(recipe):
                    deps = [prepare.key] + ([samples[gen.name].key] if gen is not None else [])
                    config = _classifier_config(loaded, spec, where, seed, arm, gen, amount, classes)
                    label = _classifier_label(spec, where, seed, arm, gen, amount)
                    # The real-only baseline runs first: it is the first answer a user can read.
                    priority = BASELINE_PRIORITY if arm == "baseline" else 0
                    train = add("train_classifier", config, deps, f"train {label}", classifier_gpus, priority)
                    for test_set in test_sets:
                        evaluate = add("evaluate", _evaluate_config(config, test_set), [train.key, prepare.key],
                                       f"evaluate {label}" + ("" if test_set == "test" else f" on {test_set}"),
                                       min(classifier_gpus, 1), priority)
                        final_deps.append(evaluate.key)
    analysis = {"study": recipe.name, "classes": classes, "analysis": recipe.analysis.model_dump(mode="json")}
    add("analyse", analysis, final_deps, f"analyse {recipe.name}", 0)
    return plan.jobs


def _units(recipe: Recipe, folds: list[int]) -> list[dict[str, int]]:
    """The replication units to plan, as the config fields that name them: {'fold': k}, or with repeated k-fold
    (splits.repeats > 1) {'repeat': r, 'fold': k}. A study with one repeat has no `repeat` field, so its keys are
    the same as before repeats existed."""
    repeats = recipe.splits.repeats
    return [({"repeat": r} if repeats > 1 else {}) | {"fold": fold} for r in range(repeats) for fold in folds]


def _unit_label(where: dict[str, int]) -> str:
    """'fold 2' or 'repeat 1 fold 2'."""
    return " ".join(f"{name} {value}" for name, value in where.items())


def _plan_generator(add, loaded, gen: GeneratorSpec, where: dict[str, int], classes: list[str], n_per_class: int,
                    prepare: PlannedJob, gpus: int, final_deps: list[str], feature_deps: list[str]) -> PlannedJob:
    """train_generator -> sample -> image_quality for one generator on one unit (fold, and repeat of the k-fold
    split: each repetition trains its own generator); returns the sample job."""
    recipe: Recipe = loaded.recipe
    gen_dump = _generator_dump(loaded, gen)
    seed = recipe.seeds[0]
    unit = _unit_label(where)
    train_config = {"generator": gen_dump, **where, "seed": seed, "classes": classes,
                    "image_size": recipe.dataset.image_size, "amp": recipe.resources.amp}
    # Only generators whose loop runs as N accelerate processes can use more than one GPU.
    train_gpus = gpus if get_generator(gen.model).distributed else min(gpus, 1)
    train = add("train_generator", train_config, [prepare.key], f"train_generator {gen.name} {unit}", train_gpus)
    sample_config = {"generator": gen_dump, **where, "seed": seed, "classes": classes,
                     "n_per_class": n_per_class}
    sample = add("sample", sample_config, [train.key], f"sample {gen.name} {unit} n={n_per_class}",
                 min(gpus, 1))
    quality = recipe.quality.model_dump(mode="json")
    quality["inception_weights"] = _abs(loaded, recipe.quality.inception_weights)
    quality_config = {"generator": gen_dump, **where, "classes": classes, "quality": quality}
    scored = add("image_quality", quality_config, [sample.key, prepare.key, *feature_deps],
                 f"image_quality {gen.name} {unit}", min(gpus, 1))
    final_deps.append(scored.key)
    return sample


def _feature_extractor_deps(loaded, where: dict[str, int], classes: list[str], prepare: PlannedJob, gpus: int,
                            add) -> list[str]:
    """With quality.features 'classifier', image quality is measured in the feature space of the fold's real-only
    baseline (first classifier, first seed): that training job becomes a dependency of image_quality."""
    recipe: Recipe = loaded.recipe
    if recipe.quality.features != "classifier":
        return []
    spec, seed = recipe.classifiers[0], recipe.seeds[0]
    config = _classifier_config(loaded, spec, where, seed, "baseline", None, 0, classes)
    label = _classifier_label(spec, where, seed, "baseline", None, 0)
    return [add("train_classifier", config, [prepare.key], f"train {label}", gpus, BASELINE_PRIORITY).key]


def _arms(recipe: Recipe) -> list[tuple[str, GeneratorSpec | None, int]]:
    """(arm, generator, amount) of every classifier run: baseline, synthetic per generator x amount, duplicates."""
    arms: list[tuple[str, GeneratorSpec | None, int]] = [("baseline", None, 0)]
    for gen in recipe.generators:
        arms.extend(("synthetic", gen, amount) for amount in recipe.amounts_for(gen))
    if recipe.duplicate_control:
        used = sorted({a for gen in recipe.generators for a in recipe.amounts_for(gen)}
                      | {a for a in recipe.amounts if a > 0})
        arms.extend(("duplicate", None, amount) for amount in used)
    return arms


def _classifier_config(loaded, spec: ClassifierSpec, where: dict[str, int], seed: int, arm: str,
                       gen: GeneratorSpec | None, amount: int, classes: list[str]) -> dict[str, Any]:
    recipe: Recipe = loaded.recipe
    dump = spec.model_dump(mode="json")
    dump["weights"] = _abs(loaded, spec.weights)
    return {"classifier": dump, **where, "seed": seed, "arm": arm,
            "generator": gen.name if gen is not None else None, "amount": amount, "classes": classes,
            "image_size": spec.image_size or recipe.dataset.image_size, "amp": recipe.resources.amp}


def _evaluate_config(config: dict[str, Any], test_set: str) -> dict[str, Any]:
    """An evaluate job's config: its classifier's, plus `test_set` when it is not the fold's test split."""
    return config if test_set == "test" else {**config, "test_set": test_set}


def _classifier_label(spec: ClassifierSpec, where: dict[str, int], seed: int, arm: str, gen: GeneratorSpec | None,
                      amount: int) -> str:
    what = {"baseline": "baseline", "synthetic": f"{gen.name if gen else ''} +{amount}",
            "duplicate": f"duplicate +{amount}"}[arm]
    return f"{spec.id} {what} {_unit_label(where)} seed {seed}"


# Dataset options added after studies were first keyed, as paths into DatasetConfig's dump.
_KEYED_WHEN_SET = (("subsample",), ("external_test",), ("external_test_per_class",), ("csv", "image_root"), ("csv", "where"), ("csv", "where_not"),
                   ("csv", "on_missing_label"), ("csv", "on_other_label"), ("csv", "on_mixed_patient"), ("csv", "findings_column"),
                   ("csv", "finding_columns"), ("csv", "multiple_findings"), ("csv", "priority"))


def _prepare_config(loaded) -> dict[str, Any]:
    recipe: Recipe = loaded.recipe
    dataset = recipe.dataset.model_dump(mode="json")
    defaults = DatasetConfig().model_dump(mode="json")
    for *parents, name in _KEYED_WHEN_SET:
        here, default = dataset, defaults
        for parent in parents:
            here, default = here[parent], default[parent]
        if here[name] == default[name]:
            del here[name]
    dataset["path"] = _abs(loaded, recipe.dataset.path)
    splits = recipe.splits.model_dump(mode="json")
    splits["run_folds"] = None
    if splits["repeats"] == 1:  # one repeat prepares what every study prepared before repeats existed: same key
        del splits["repeats"]
    return {"dataset": dataset, "splits": splits}


def _generator_dump(loaded, gen: GeneratorSpec) -> dict[str, Any]:
    dump = gen.model_dump(mode="json")
    dump["amounts"] = None
    for name in PATH_PARAMS:
        value = dump["params"].get(name)
        if isinstance(value, str) and loaded.resolve(value).exists():
            # A local file or folder, relative to the recipe like every other path; otherwise e.g. a hub repo id.
            dump["params"] = {**dump["params"], name: str(loaded.resolve(value))}
    return dump


def _abs(loaded, path: str | None) -> str | None:
    resolved = loaded.resolve(path)
    return None if resolved is None else str(resolved)


def study_classes(loaded) -> list[str]:
    """Class names of the study: the recipe's list, the phantom's five, sorted class folders, or sorted CSV labels."""
    dataset = loaded.recipe.dataset
    if dataset.classes:
        return list(dataset.classes)
    if dataset.source == "phantom":
        return list(CLASS_NAMES_PAPER)
    path = Path(loaded.resolve(dataset.path))
    if dataset.source == "folder":
        return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    # The loader itself (rules, label layouts, mixed patients, missing files): planned classes are loaded classes.
    return load_csv(loaded.dataset).classes


def summarise_plan(jobs: list[PlannedJob]) -> dict[str, int]:
    """Number of jobs per kind, in pipeline order."""
    counts = {kind: 0 for kind in KIND_ORDER}
    for job in jobs:
        counts[job.kind] = counts.get(job.kind, 0) + 1
    return {kind: n for kind, n in counts.items() if n}
