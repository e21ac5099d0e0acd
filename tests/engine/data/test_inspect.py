"""`xaug data inspect`: what the loader sees in a CheXpert-style table, before anything runs."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from test_csv_layouts import CHEX_HEADER, chexpert_rows, write_table
from xaug.engine.cli import load_commands
from xaug.engine.data.inspect import inspect_dataset
from xaug.store.errors import DataError

RECIPE = """\
name: chexpert-demo
dataset:
  source: csv
  path: metadata.csv
  csv:
    path_column: Path
    patient_column: Patient
    image_root: images
    where: {{Frontal/Lateral: [Frontal]}}
    on_missing_label: skip
    finding_columns:
      columns: [No Finding, Pneumonia, Edema]
      uncertain: {uncertain}
      blank: negative
    label_map: {{No Finding: healthy, Pneumonia: pneumonia, Edema: edema}}
  subsample:
    per_class: {{healthy: {healthy}, pneumonia: 1}}
  external_test: true
classifiers:
  - model: resnet10t
"""


def _recipe(tmp_path, uncertain="skip", healthy=1):
    rows = chexpert_rows()
    rows[6]["Frontal/Lateral"] = "Lateral"
    write_table(tmp_path, CHEX_HEADER, rows)
    path = tmp_path / "chexpert.yaml"
    path.write_text(RECIPE.format(uncertain=uncertain, healthy=healthy))
    return path


def test_inspect_prints_classes_skips_patients_and_images(tmp_path):
    result = CliRunner().invoke(load_commands(), ["data", "inspect", str(_recipe(tmp_path))],
                                catch_exceptions=False, env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert "healthy 1 1 1 1 1" in lines and "pneumonia 2 2 1 1 1" in lines  # images patients target drawn...
    assert "all 2 3 3 2 2 2" in lines
    assert "external test set: 1 images not drawn" in lines
    assert "where 1 patient6/view1_frontal.png: Frontal/Lateral is 'Lateral', not one of ['Frontal']" \
           " (metadata.csv, row 8)" in lines
    assert "uncertain 2 patient2/view1_frontal.png: Pneumonia is uncertain (-1) (metadata.csv, row 4)" in lines
    assert "patient4/view1_frontal.png: Edema is uncertain (-1) (metadata.csv, row 6)" in lines
    assert "on_missing_label 1 patient5/view1_frontal.png: no label in No Finding, Pneumonia, Edema" \
           " (metadata.csv, row 7)" in lines
    assert "1: 3" in result.output and "40x30 PNG L (3)" in result.output


def test_inspect_lists_a_subsample_that_cannot_be_drawn(tmp_path):
    seen = inspect_dataset(_loaded_dataset(_recipe(tmp_path, uncertain="positive", healthy=5)))
    assert [(c.name, c.images, c.patients) for c in seen.classes] == [("edema", 1, 1), ("healthy", 1, 1),
                                                                      ("pneumonia", 3, 3)]
    assert seen.problems == ["dataset.subsample: class 'healthy' has 1 images from 1 patients, fewer than its"
                             " target 5; lower the target or add data"]


def test_a_recipe_error_is_one_clean_line(tmp_path, monkeypatch, capsys):
    from xaug.engine.cli import main

    path = _recipe(tmp_path)
    path.write_text(path.read_text().replace("Frontal/Lateral:", "View:"))
    monkeypatch.setattr("sys.argv", ["xaug", "data", "inspect", str(path)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "chexpert.yaml:9: dataset.csv.where.View:" in err and "Traceback" not in err


def _loaded_dataset(path):
    from xaug.engine.recipe import load_recipe

    return load_recipe(path).dataset


def test_loader_errors_surface_unchanged(tmp_path):
    path = _recipe(tmp_path)
    (tmp_path / "metadata.csv").write_text("Path,Patient,Frontal/Lateral,No Finding,Pneumonia,Edema\n")
    with pytest.raises(DataError, match="no readable image rows"):
        inspect_dataset(_loaded_dataset(path))
