"""Weights are resolved before anything is queued, never downloaded by a job, and fetched on request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
from PIL import Image
from typer.testing import CliRunner

from xaug.engine.cli import load_commands
from xaug.store.errors import WeightsError
from xaug.engine.queue.submit import submit_recipe
from xaug.engine.recipe import parse_recipe
from xaug.engine.weights import check_weights, fetch_weights
from xaug.store import open_store

RECIPE = """\
name: needs
dataset: {{source: phantom, image_size: 32, phantom: {{scale: 0.05}}}}
splits: {{folds: 2}}
generators: [{{name: sd, model: sd_finetune, params: {{base_model: {base}}}}}]
classifiers:
  - {{model: test_efficientnet, pretrained: true, in_chans: 3}}
  - {{model: resnet10t, name: local, pretrained: true, weights: {local}}}
amounts: [0, 10]
quality: {{features: {features}}}
"""
CLASSIFIER_REPO = timm.models.get_pretrained_cfg("test_efficientnet").hf_hub_id


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, and the hub nominally online: nothing may be downloaded all the same."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    # sd_model's base-model lookup reads the cache folder huggingface_hub fixed at its import, not the environment.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    return tmp_path / "hub"


def _loaded(tmp_path, base="CompVis/stable-diffusion-v1-4", features="pixels"):
    (tmp_path / "w.safetensors").write_bytes(b"local weights")
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(base=base, local="w.safetensors", features=features))
    return parse_recipe(path.read_text(), path)


def _cache_file(cache: Path, repo_id: str, filename: str) -> Path:
    """Lay a file out the way huggingface_hub's cache does (refs/main -> snapshots/<commit>/<file>)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text("c0ffee")
    target = repo / "snapshots" / "c0ffee" / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"{}")
    return target


def test_submit_refuses_missing_weights_and_queues_nothing(tmp_path, empty_cache):
    loaded = _loaded(tmp_path)
    db = open_store(tmp_path / "x.db")
    with pytest.raises(WeightsError) as failed:
        submit_recipe(db, loaded)
    message = str(failed.value)
    assert "2 missing weights; nothing was queued" in message
    assert f"classifiers[0] (test_efficientnet): pretrained weights" in message and CLASSIFIER_REPO in message
    assert "generators[0] (sd) base_model: base_model 'CompVis/stable-diffusion-v1-4'" in message
    assert "classifiers[1]" not in message  # its local file exists
    assert db["jobs"].count == 0 and db["studies"].count == 0


def test_fetch_downloads_what_the_recipe_names_into_the_cache(tmp_path, empty_cache, monkeypatch):
    from xaug.engine.metrics.features import INCEPTION_FILE, INCEPTION_URL

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    calls = []

    def download_file(repo_id, filename, cache_dir):
        calls.append(("file", repo_id, filename, Path(cache_dir)))
        return str(_cache_file(Path(cache_dir), repo_id, filename))

    def download_snapshot(repo_id, cache_dir):
        calls.append(("snapshot", repo_id, None, Path(cache_dir)))
        return str(_cache_file(Path(cache_dir), repo_id, "model_index.json").parent)

    def download_url(url, path):
        calls.append(("url", url, None, Path(path)))
        Path(path).write_bytes(b"inception")

    loaded = _loaded(tmp_path, features="inception")
    with pytest.raises(WeightsError, match="3 missing weights"):
        check_weights(loaded)
    fetched = fetch_weights(loaded, download_file, download_snapshot, download_url)
    assert calls == [("file", CLASSIFIER_REPO, "model.safetensors", empty_cache),
                     ("snapshot", "CompVis/stable-diffusion-v1-4", None, empty_cache),
                     ("url", INCEPTION_URL, None, tmp_path / "torch" / "hub" / "checkpoints" / INCEPTION_FILE)]
    assert len(fetched) == 3
    check_weights(loaded)  # everything is now found locally


def test_weights_fetch_command_then_recipe_check(tmp_path, empty_cache, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo_id, filename, cache_dir: str(_cache_file(Path(cache_dir), repo_id, filename)))
    base = tmp_path / "sd-base"
    (base / "model_index.json").parent.mkdir()
    (base / "model_index.json").write_text("{}")  # a local base model: checked, never downloaded
    _loaded(tmp_path, base="sd-base")
    app = load_commands()
    runner = CliRunner()
    out = runner.invoke(app, ["weights", "fetch", str(tmp_path / "recipe.yaml")], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert f"fetched classifiers[0] (test_efficientnet): {CLASSIFIER_REPO}" in out.output and "1 download" in out.output
    out = runner.invoke(app, ["recipe", "check", str(tmp_path / "recipe.yaml")], catch_exceptions=False)
    assert out.exit_code == 0 and "ok" in out.output


def test_a_worker_turns_the_hub_offline_whatever_the_environment():
    code = ("import huggingface_hub.constants as c; from xaug.engine.queue.worker import hub_offline; "
            "before = c.is_offline_mode(); hub_offline(); print(before, c.is_offline_mode())")
    env = {**os.environ, "HF_HUB_OFFLINE": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def _folder(root: Path, classes: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for name, patients in classes.items():
        (root / name).mkdir(parents=True)
        for p in range(patients):
            for i in range(2):
                Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(root / name / f"P{name}{p}_{i}.png")


def test_recipe_check_lists_classes_and_fails_on_an_empty_one(tmp_path):
    _folder(tmp_path / "data", {"healthy": 3, "viral": 2})
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: f\ndataset: {source: folder, path: data, patient_pattern: '^(P\\w+?)_'}\n"
                      "splits: {folds: 2}\nclassifiers: [{model: resnet10t}]\n")
    out = CliRunner().invoke(load_commands(), ["recipe", "check", str(recipe)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    rows = [line.split() for line in out.output.splitlines()]
    assert ["│", "healthy", "│", "6", "│", "3", "│"] in rows  # class, images, patients
    assert ["│", "viral", "│", "4", "│", "2", "│"] in rows
    (tmp_path / "data" / "fungal").mkdir()
    xaug = Path(sys.executable).with_name("xaug")
    done = subprocess.run([str(xaug), "recipe", "check", str(recipe)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"xaug: error: {tmp_path / 'data' / 'fungal'}: the folder of class 'fungal' holds no PNG, JPEG or DICOM file; add "
        "its images, or move the folder out of the dataset"]
