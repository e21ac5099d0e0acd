"""The pretrained weights a recipe needs: checked before anything is queued, fetched only when asked.

A study must never find out in its third hour that a classifier's ImageNet weights or a Stable Diffusion base
model are missing, and a worker must never spend minutes retrying a download on a machine without internet. So:

- `check_weights` (called by `xaug recipe check`, `xaug submit` and `xaug run`) resolves every weight locally, the
  way the jobs will, and raises one WeightsError listing every missing one with how to provide it;
- workers run with the Hugging Face hub offline (engine/queue/worker.py), so nothing is downloaded at run time;
- `fetch_weights` (`xaug weights fetch RECIPE`, on a machine with internet) downloads what the recipe names into
  the Hugging Face cache (and Inception's weights into torch.hub's), to be copied to the offline machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xaug.store.errors import WeightsError


@dataclass(frozen=True)
class Need:
    """One pretrained weight a recipe needs."""

    where: str
    """Where the recipe asks for it, e.g. `classifiers[0] (resnet50)`."""
    resolve: Callable[[], object]
    """Finds it locally (returns its path) or raises WeightsError; never downloads."""
    repo_id: str | None = None
    """The Hugging Face repository it comes from, when it comes from one."""
    filename: str | None = None
    """The one file of `repo_id` that is needed; None for a whole snapshot (a diffusers model)."""
    url: str | None = None
    """A plain download address instead of a repository (torch-fidelity's Inception weights)."""
    target: Path | None = None
    """Where the file from `url` goes: the cache folder the job looks in."""


def recipe_needs(loaded) -> list[Need]:
    """Every pretrained weight a loaded recipe needs: pretrained classifiers, Stable Diffusion base models, and
    the Inception weights when image quality is measured in Inception features."""
    return [*_classifier_needs(loaded), *_base_model_needs(loaded), *_inception_needs(loaded)]


def check_weights(loaded) -> None:
    """Raise one WeightsError naming every weight the recipe needs that is not available locally."""
    problems = []
    for need in recipe_needs(loaded):
        try:
            need.resolve()
        except WeightsError as exc:
            problems.append(f"{need.where}: {exc}")
    fetch = ("`xaug weights fetch RECIPE` on a machine with internet downloads them into the Hugging Face cache")
    if len(problems) == 1:  # one problem, one line
        raise WeightsError(f"{loaded.path or 'recipe'}: {problems[0]} Nothing was queued; {fetch}.")
    if problems:
        raise WeightsError(f"{loaded.path or 'recipe'}: {len(problems)} missing weights; nothing was queued. "
                           f"{fetch}.\n" + "\n".join("  " + p for p in problems))


def fetch_weights(loaded, download_file: Callable | None = None, download_snapshot: Callable | None = None,
                  download_url: Callable | None = None) -> list[str]:
    """Download every weight the recipe needs from the hub (into the Hugging Face cache) or from its address (into
    the cache folder its job reads); returns what was fetched. Weights from local paths are only checked.

    `download_file(repo_id, filename, cache_dir=...)`, `download_snapshot(repo_id, cache_dir=...)` and
    `download_url(url, path)` default to huggingface_hub's hf_hub_download and snapshot_download, and torch.hub's
    download_url_to_file.
    """
    from xaug.engine.classifiers.registry import hf_cache_dir

    cache = hf_cache_dir()
    fetched = []
    for need in recipe_needs(loaded):
        if need.repo_id is None and need.url is None:
            need.resolve()  # a local file: nothing to download, but say now if it is missing
            continue
        source = need.repo_id or need.url
        try:
            if need.url is not None:
                need.target.parent.mkdir(parents=True, exist_ok=True)
                (download_url or _torch_download)(need.url, str(need.target))
            elif need.filename is not None:
                (download_file or _hub("hf_hub_download"))(need.repo_id, need.filename, cache_dir=cache)
            else:
                (download_snapshot or _hub("snapshot_download"))(need.repo_id, cache_dir=cache)
        except Exception as exc:  # noqa: BLE001 - network, auth, missing repo: one message says which and why
            raise WeightsError(f"{need.where}: downloading {source} failed ({type(exc).__name__}: {exc})") from None
        fetched.append(f"{need.where}: {source}" + (f" ({need.filename})" if need.filename else ""))
    return fetched


def _hub(name: str) -> Callable:
    import huggingface_hub

    return getattr(huggingface_hub, name)


def _torch_download(url: str, path: str) -> None:
    from torch.hub import download_url_to_file

    download_url_to_file(url, path)


def _classifier_needs(loaded):
    specs = [(i, spec) for i, spec in enumerate(loaded.recipe.classifiers) if spec.pretrained]
    if not specs:
        return
    from xaug.engine.classifiers.registry import WEIGHT_FILES, hub_id_of, resolve_weights

    for i, spec in specs:
        where = f"classifiers[{i}] ({spec.id})"
        if spec.weights is not None:
            local = spec.model_copy(update={"weights": str(loaded.resolve(spec.weights))})
            yield Need(where, lambda local=local: resolve_weights(local))
            continue
        try:
            repo_id, filename = hub_id_of(spec.model)
        except WeightsError:
            repo_id, filename = None, None  # no published weights: resolving says so
        yield Need(where, lambda spec=spec: resolve_weights(spec), repo_id, filename or WEIGHT_FILES[0])


def _base_model_needs(loaded):
    from pydantic import ValidationError

    from xaug.engine.generators.registry import params_class

    for g, gen in enumerate(loaded.recipe.generators):
        try:
            params = params_class(gen.model).model_validate(gen.params)
        except (KeyError, ValidationError):
            continue  # the recipe's own validation reports it
        base_model = getattr(params, "base_model", None)
        if not isinstance(base_model, str):
            continue
        from xaug.engine.generators.sd_model import resolve_base_model

        where, local = f"generators[{g}] ({gen.name}) base_model", loaded.resolve(base_model)
        if local.exists():  # a local diffusers folder, relative to the recipe (as the planner resolves it)
            yield Need(where, lambda local=local: resolve_base_model(str(local)))
        else:  # a hub repo id, looked up in the local cache only
            yield Need(where, lambda name=base_model: resolve_base_model(name), base_model)


def _inception_needs(loaded):
    recipe = loaded.recipe
    if not recipe.generators or recipe.quality.features != "inception":
        return
    from xaug.engine.metrics.features import INCEPTION_FILE, INCEPTION_URL, inception_weights_path

    explicit = loaded.resolve(recipe.quality.inception_weights)
    if explicit is not None:
        yield Need("quality.inception_weights", lambda: inception_weights_path(explicit))
        return
    import torch

    target = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    yield Need("quality.features: inception", lambda: inception_weights_path(None), url=INCEPTION_URL, target=target)

