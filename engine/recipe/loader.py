"""Loading a recipe: YAML -> validated, frozen `Recipe`, or one `RecipeError` listing every problem.

Each problem names the file, the line, the key path and, for a misspelt key or name, what was probably meant.
"""

from __future__ import annotations

import difflib
import json
import typing
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from xaug.store.errors import RecipeError
from xaug.engine.recipe.schema import DatasetConfig, Recipe

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe with where it came from."""

    recipe: Recipe
    path: Path | None
    text: str

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the recipe are resolved against."""
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, relative: str | None) -> Path | None:
        """A path from the recipe, resolved against the recipe file's folder."""
        if relative is None:
            return None
        path = Path(relative).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def dataset(self) -> DatasetConfig:
        """The dataset section with its path resolved against the recipe file, as prepare_data gets it."""
        dataset = self.recipe.dataset
        return dataset if dataset.path is None else dataset.model_copy(update={"path": str(self.resolve(dataset.path))})

    @cached_property
    def fingerprints(self):
        """Content fingerprints of the files the recipe names (dataset, weights, base models), by absolute path.

        Computed once per loaded recipe, on first use, before planning (engine/data/fingerprint.py: files are read
        only when their stat changed); the planner puts them in job keys in place of the paths.
        """
        from xaug.engine.data.fingerprint import fingerprint_inputs

        return fingerprint_inputs(self)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recipe."""

    loc: Loc
    message: str
    line: int | None = None

    def render(self, filename: str) -> str:
        """`file:line: key.path: message`."""
        where = f"{filename}:{self.line}" if self.line else filename
        key = _format_loc(self.loc)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


def load_recipe(path: str | Path) -> LoadedRecipe:
    """Read and validate a recipe file; raises RecipeError naming file, line and key for every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read the recipe: {exc.strerror}") from None
    return parse_recipe(text, path)


def parse_recipe(text: str, path: Path | None = None) -> LoadedRecipe:
    """Validate recipe text (path is used for messages and for resolving relative paths)."""
    filename = str(path) if path else "<recipe>"
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise RecipeError(f"{filename}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{filename}: a recipe is a mapping of keys (name:, dataset:, classifiers:, ...)")
    problems = _schema_problems(data)
    recipe = None
    if not problems:
        recipe = Recipe.model_validate(data)
        loaded = LoadedRecipe(recipe=recipe, path=path.resolve() if path else None, text=text)
        from xaug.engine.recipe.checks import semantic_problems

        problems = [Problem(loc, msg) for loc, msg in semantic_problems(loaded)]
    if problems:
        _raise_located(problems, root, filename)
    return loaded


def check_models(loaded: LoadedRecipe) -> None:
    """Raise a located RecipeError when a classifier names a model timm does not have (imports timm, hence torch:
    run by `xaug recipe check`, plan and submit, not by loading)."""
    from xaug.engine.recipe.checks import model_problems

    problems = [Problem(loc, msg) for loc, msg in model_problems(loaded)]
    if problems:
        filename = str(loaded.path) if loaded.path else "<recipe>"
        _raise_located(problems, yaml.compose(loaded.text, Loader=yaml.SafeLoader) if loaded.text else None,
                       filename)


def _raise_located(problems: list[Problem], root, filename: str) -> None:
    """One RecipeError for all problems, each with its line in the YAML (`root`: the composed document, or None)."""
    located = [Problem(p.loc, p.message, _line_of(root, p.loc) if root is not None else None) for p in problems]
    located.sort(key=lambda p: (p.line or 0))
    if len(located) == 1:  # one problem, one line
        raise RecipeError(located[0].render(filename))
    raise RecipeError(f"{filename}: {len(located)} problems:\n" + "\n".join("  " + p.render(filename)
                                                                           for p in located))


def recipe_json_schema() -> dict:
    """The JSON schema of recipes, for editors (yaml-language-server) to autocomplete and check."""
    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "xaug recipe"
    return schema


def _schema_problems(data: dict) -> list[Problem]:
    """Pydantic validation, plus each generator's own params schema, as located problems."""
    problems: list[Problem] = []
    try:
        Recipe.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, Recipe, data, ()))
    problems.extend(_generator_params_problems(data))
    return problems


def _generator_params_problems(data: dict) -> list[Problem]:
    """Validate `generators[i].params` with the schema the named generator registered."""
    from xaug.engine.generators.registry import generator_names, params_class, suggest

    problems: list[Problem] = []
    generators = data.get("generators") or []
    if not isinstance(generators, list):
        return problems
    for i, spec in enumerate(generators):
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), str):
            continue
        name = spec["model"]
        if name not in generator_names():
            known = generator_names()
            problems.append(Problem(("generators", i, "model"),
                                    f"unknown generator '{name}'.{suggest(name, known)} Known: {', '.join(known)}"))
            continue
        params = spec.get("params") or {}
        if not isinstance(params, dict):
            continue
        try:
            config_class = params_class(name)
        except KeyError as exc:  # a plugin generator that does not import or register
            problems.append(Problem(("generators", i, "model"), exc.args[0]))
            continue
        try:
            config_class.model_validate(params)
        except ValidationError as exc:
            problems.extend(_problems_from(exc, config_class, params, ("generators", i, "params")))
    return problems


def _problems_from(exc: ValidationError, model: type[BaseModel], data: Any, prefix: Loc) -> list[Problem]:
    """Turn pydantic errors into problems with readable messages and did-you-mean hints."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            message = f"unknown key '{loc[-1]}'.{hint} Allowed here: {', '.join(allowed)}"
        elif err["type"] == "literal_error":
            expected = [s.strip(" '") for s in err["ctx"]["expected"].replace(" or ", ",").split(",")]
            close = difflib.get_close_matches(str(err["input"]), expected, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            message = f"'{err['input']}' is not one of {', '.join(expected)}.{hint}"
        elif err["type"] == "missing":
            message = "required key is missing"
        elif "input" in err and not isinstance(err["input"], (dict, list)):
            message = f"{message} (got {json.dumps(err['input'], default=str)})"
        problems.append(Problem(prefix + loc, message))
    return problems


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The field names allowed at a location inside `model` (following nested models and lists)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else current
            continue
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] from an annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        return args[0]
    return annotation


def _line_of(root: yaml.Node | None, loc: Loc) -> int | None:
    """1-based line of the deepest YAML node that `loc` reaches."""
    node, line = root, (root.start_mark.line + 1 if root else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _format_loc(loc: Loc) -> str:
    """('generators', 0, 'params') -> 'generators[0].params'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
