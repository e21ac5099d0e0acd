"""Names from data never lead a path out of its folder: class names are checked where every source passes, and
every path built from data goes through artifact_path, which refuses to leave its root."""

from __future__ import annotations

import os

import pytest

from conftest import write_png
from xaug.engine.data.folder import load_folder
from xaug.engine.errors import DataError, RecipeError
from xaug.engine.generators.samples import sample_path
from xaug.engine.recipe import parse_recipe
from xaug.engine.recipe.schema import DatasetConfig
from xaug.store.artifacts import artifact_path


def test_artifact_path_refuses_every_way_out(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    assert artifact_path(root, "samples/viral", "00001.png") == root / "samples" / "viral" / "00001.png"
    for bad in ("..", "../x", "a/../../x", "/etc/passwd", "", "a\x00b", "..\\..\\x"):
        with pytest.raises(DataError, match="refusing"):
            artifact_path(root, "samples", bad)
    os.symlink(tmp_path, root / "link")  # a folder inside that points outside
    with pytest.raises(DataError, match="outside"):
        artifact_path(root, "link", "x")
    with pytest.raises(DataError, match="refusing"):
        sample_path(root / "job", "../../x", 0)


def test_an_unusable_class_folder_name_is_named(tmp_path):
    for name in ("healthy", "no finding"):
        for i in range(2):
            write_png(tmp_path / "data" / name / f"P{name[0]}{i}_0.png", 50, seed=i)
    cfg = DatasetConfig(source="folder", path=str(tmp_path / "data"), patient_pattern=r"^(P\w+)_")
    with pytest.raises(DataError, match=r"no finding/P.*'no finding' is not a usable class name.*no_finding"):
        load_folder(cfg)


@pytest.mark.parametrize("section", ["classes: [healthy, ../x]", "csv: {label_map: {NORMAL: healthy, V: /tmp/x}}"])
def test_recipe_class_names_must_be_safe(section):
    text = (f"name: s\ndataset:\n  source: csv\n  path: t.csv\n  {section}\n"
            "classifiers: [{model: resnet10t}]\n")
    with pytest.raises(RecipeError, match=r"dataset\.(classes\[1\]|csv\.label_map\.V).*should match pattern"):
        parse_recipe(text)
