"""Recipe loading: every kind of bad recipe gives one RecipeError with file, line, key and a hint."""

import json
import textwrap

import pytest

from xaug.store.errors import RecipeError
from xaug.engine.recipe import load_recipe, parse_recipe, recipe_json_schema

GOOD = """\
name: tiny
dataset:
  source: phantom
  image_size: 32
splits:
  folds: 3
classifiers:
  - model: resnet10t
    epochs: 1
"""


def _write(tmp_path, text, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _error(tmp_path, text) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    return str(info.value)


def test_good_recipe_loads_frozen(tmp_path):
    loaded = load_recipe(_write(tmp_path, GOOD))
    assert loaded.recipe.name == "tiny"
    assert loaded.recipe.splits.folds == 3
    assert loaded.recipe.classifiers[0].id == "resnet10t"
    with pytest.raises(Exception):
        loaded.recipe.name = "other"


def test_unknown_key_names_line_and_suggests(tmp_path):
    message = _error(tmp_path, GOOD.replace("image_size: 32", "image_siz: 32"))
    assert "recipe.yaml:4: dataset.image_siz: unknown key 'image_siz'" in message
    assert "Did you mean 'image_size'?" in message


def test_wrong_choice_suggests(tmp_path):
    message = _error(tmp_path, GOOD.replace("source: phantom", "source: phantm"))
    assert ":3: dataset.source:" in message and "Did you mean 'phantom'?" in message


def test_out_of_range_number(tmp_path):
    message = _error(tmp_path, GOOD.replace("folds: 3", "folds: 1"))
    assert ":6: splits.folds:" in message and "greater than or equal to 2" in message


def test_wrong_type(tmp_path):
    message = _error(tmp_path, GOOD.replace("epochs: 1", "epochs: many"))
    assert ":9: classifiers[0].epochs:" in message and "many" in message


def test_missing_required_key(tmp_path):
    message = _error(tmp_path, "name: x\n")
    assert "classifiers: required key is missing" in message


def test_unknown_timm_model_suggests(tmp_path):
    from xaug.engine.recipe import check_models

    loaded = load_recipe(_write(tmp_path, GOOD.replace("model: resnet10t", "model: resnet5O")))  # loading: no timm
    with pytest.raises(RecipeError) as info:
        check_models(loaded)
    message = str(info.value)
    assert ":8: classifiers[0].model: timm has no model 'resnet5O'" in message
    assert "Did you mean" in message


def test_unknown_generator_suggests(tmp_path):
    text = GOOD + "generators:\n  - name: g\n    model: ddmp\namounts: [0, 10]\n"
    message = _error(tmp_path, text)
    assert ":12: generators[0].model: unknown generator 'ddmp'. Did you mean 'ddpm'?" in message


def test_duplicate_names(tmp_path):
    text = GOOD + "  - model: resnet10t\n"
    message = _error(tmp_path, text)
    assert "classifiers[1].name" in message and "used 2 times" in message


def test_missing_dataset_path(tmp_path):
    text = GOOD.replace("source: phantom", "source: folder\n  path: nowhere")
    message = _error(tmp_path, text)
    assert "dataset.path:" in message and "nowhere does not exist" in message


def test_negative_amount(tmp_path):
    message = _error(tmp_path, GOOD + "amounts: [0, -5]\n")
    assert "amounts[1]: amount -5 is negative" in message


def test_bad_regex(tmp_path):
    message = _error(tmp_path, GOOD.replace("image_size: 32", "image_size: 32\n  patient_pattern: '('"))
    assert "dataset.patient_pattern: not a valid regular expression" in message


def test_not_yaml(tmp_path):
    message = _error(tmp_path, "name: [unclosed\n")
    assert "not valid YAML" in message and "recipe.yaml:" in message


def test_not_a_mapping(tmp_path):
    message = _error(tmp_path, "- a\n- b\n")
    assert "a recipe is a mapping" in message


def test_no_such_file(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "absent.yaml")


def test_every_problem_is_reported_at_once(tmp_path):
    text = GOOD.replace("image_size: 32", "image_siz: 32").replace("folds: 3", "folds: 0")
    message = _error(tmp_path, text)
    assert "2 problems" in message


def test_safe_load_refuses_python_objects(tmp_path):
    message = _error(tmp_path, "name: !!python/object/apply:os.system ['true']\n")
    assert "not valid YAML" in message


def test_json_schema_describes_fields():
    schema = recipe_json_schema()
    text = json.dumps(schema)
    assert schema["properties"]["classifiers"]["description"] == "Downstream classifiers."
    assert "additionalProperties" in text
    assert "phantom" in text


def test_relative_paths_resolve_against_recipe_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a").mkdir()
    text = GOOD.replace("source: phantom", "source: folder\n  path: data")
    loaded = parse_recipe(textwrap.dedent(text), tmp_path / "r.yaml")
    assert loaded.resolve(loaded.recipe.dataset.path) == data.resolve()


def test_shipped_recipes_validate():
    from pathlib import Path

    recipes = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))
    assert any(p.name == "quickstart.yaml" for p in recipes)
    for path in recipes:
        load_recipe(path)


def test_multi_gpu_generator_batch_must_split_over_its_gpus(tmp_path):
    text = GOOD + "amounts: [0, 10]\ngenerators:\n  - name: d\n    model: ddpm\n    params: {batch_size: 6}\n" \
                  "resources:\n  generator_gpus: 4\n"
    message = _error(tmp_path, text)
    assert "generators[0].params.batch_size" in message and "not split over resources.generator_gpus 4" in message
    load_recipe(_write(tmp_path, text.replace("batch_size: 6", "batch_size: 8")))  # a multiple of 4 loads
    load_recipe(_write(tmp_path, text.replace("model: ddpm", "model: gan")))  # the GAN uses one GPU


def _png_folder(root, names=("healthy/a.png", "healthy/b.png", "viral/c.png")):
    from PIL import Image

    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), 128).save(root / name)
    return root


FOLDER = GOOD.replace("source: phantom", "source: folder\n  path: data")


def test_folder_without_patient_ids_fails_the_leakage_guard(tmp_path):
    _png_folder(tmp_path / "data")
    message = _error(tmp_path, FOLDER)
    assert "recipe.yaml:2: dataset.patient_pattern: not set, and" in message
    assert str(tmp_path / "data" / "healthy" / "a.png") in message
    assert "dataset.one_patient_per_image: true" in message and "training and the test split" in message
    # an explicit statement, or a pattern, passes
    load_recipe(_write(tmp_path, FOLDER.replace("path: data", "path: data\n  one_patient_per_image: true")))
    load_recipe(_write(tmp_path, FOLDER.replace("path: data", "path: data\n  patient_pattern: '^(.)'")))


def test_folder_of_dicom_files_is_left_to_the_loader(tmp_path):
    """Only reading a DICOM file tells whether it has a PatientID: the recipe check lets such a folder pass."""
    for name in ("healthy/a.dcm", "viral/b.dcm"):
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / name).write_bytes(b"")
    load_recipe(_write(tmp_path, FOLDER))


def test_one_patient_per_image_only_where_it_means_something(tmp_path):
    _png_folder(tmp_path / "data")
    both = FOLDER.replace("path: data", "path: data\n  patient_pattern: '^(.)'\n  one_patient_per_image: true")
    assert "dataset.one_patient_per_image: contradicts dataset.patient_pattern" in _error(tmp_path, both)
    phantom = GOOD.replace("source: phantom", "source: phantom\n  one_patient_per_image: true")
    assert "applies to source: folder only" in _error(tmp_path, phantom)


def test_recipe_check_cli_prints_the_guard_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    from xaug.engine.cli import main

    _png_folder(tmp_path / "data")
    path = _write(tmp_path, FOLDER)
    monkeypatch.setattr("sys.argv", ["xaug", "recipe", "check", str(path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    guard = [line for line in err.splitlines() if "patient_pattern" in line]
    assert len(guard) == 1 and guard[0].startswith(f"xaug: error: {path}:2: dataset.patient_pattern: not set, and")
    assert "Traceback" not in err


def test_csv_dataset_options_are_checked_against_the_header_with_file_line_and_key(tmp_path):
    (tmp_path / "meta.csv").write_text("Image Index,Finding Labels,Patient ID,View Position\n")
    text = """\
    name: nih
    dataset:
      source: csv
      path: meta.csv
      classes: [healthy, pneumonia]
      csv:
        path_column: Image Index
        patient_column: Patient ID
        findings_column: {column: Finding Label}
        where:
          View: [PA]
      subsample:
        per_class: {healthy: 10, pneumonai: 5}
      external_test: true
    classifiers:
      - model: resnet10t
    """
    message = _error(tmp_path, text)
    assert "recipe.yaml:9: dataset.csv.findings_column.column:" in message
    assert "has no column 'Finding Label'" in message
    assert "recipe.yaml:11: dataset.csv.where.View:" in message
    assert "recipe.yaml:13: dataset.subsample.per_class.pneumonai: 'pneumonai' is not in dataset.classes." \
           " Did you mean 'pneumonia'?" in message
    fixed = text.replace("Finding Label}", "Finding Labels}").replace("View:", "View Position:")
    fixed = fixed.replace("pneumonai", "pneumonia").replace("      subsample:\n        per_class: {healthy: 10,"
                                                            " pneumonia: 5}\n", "")
    assert "recipe.yaml:12: dataset.external_test: needs dataset.subsample" in _error(tmp_path, fixed)
    assert parse_recipe(textwrap.dedent(fixed.replace("external_test: true", "external_test: false")), tmp_path / "r.yaml")
    capped = fixed.replace("external_test: true", "external_test_per_class: 50")
    assert "recipe.yaml:12: dataset.external_test_per_class: applies only with dataset.external_test: true" in \
        _error(tmp_path, capped)
