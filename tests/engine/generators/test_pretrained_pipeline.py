"""`model: pretrained_pipeline`: local diffusers pipeline folders (a tiny DDPM per class, a tiny Stable Diffusion
with LoRA) checked by the recipe, recorded by train_generator and sampled by the real sample job."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_sd import tiny_sd_dir

from xaug.engine.errors import RecipeError
from xaug.engine.generators.base import TrainImages
from xaug.engine.generators.pretrained_pipeline import PretrainedPipelineParams
from xaug.engine.generators.registry import get_generator
from xaug.engine.jobs import job_function
from xaug.engine.jobs.context import JobContext
from xaug.engine.jobs.sample import batch_seed
from xaug.engine.planner import plan_study
from xaug.engine.recipe import load_recipe
from xaug.store import artifact_root, open_store
from xaug.store.artifacts import load_artifacts
from xaug.store.jobs import load_job_deps, submit_study

CLASSES = ["healthy", "viral"]
RECIPE = """\
name: pretrained
dataset: {{source: phantom, image_size: 32, classes: [healthy, viral], phantom: {{scale: 0.1, native_size: 64}}}}
splits: {{folds: 2, run_folds: [0]}}
generators:
  - {{name: mine, model: pretrained_pipeline, per_class: {per_class}, params: {params}}}
classifiers: [{{model: resnet10t}}]
amounts: [0, 3]
seeds: [4]
resources: {{device: cpu}}
"""


def write_tiny_ddpm(folder: Path, seed: int) -> Path:
    """A random 16-px grey DDPMPipeline (UNet2DModel + DDPMScheduler) saved with save_pretrained."""
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4)
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=50)).save_pretrained(folder)
    return folder


def write_tiny_lora(sd_folder: Path, folder: Path) -> Path:
    """Random (not zero-initialised) LoRA adapters for the tiny SD's UNet, in diffusers format."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(1)
    unet = UNet2DConditionModel.from_pretrained(sd_folder / "unet")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_v"]))
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def ddpm_root(tmp_path_factory) -> Path:
    """models/ddpm/<class>/: one tiny DDPM pipeline per class, with different weights."""
    root = tmp_path_factory.mktemp("models") / "ddpm"
    for i, name in enumerate(CLASSES):
        write_tiny_ddpm(root / name, seed=i)
    return root


@pytest.fixture(scope="module")
def sd_with_lora(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny random Stable Diffusion folder and LoRA weights for it."""
    sd = tiny_sd_dir(str(tmp_path_factory.getbasetemp()))
    return sd, write_tiny_lora(sd, tmp_path_factory.mktemp("lora") / "xray-lora")


def _recipe(tmp_path: Path, per_class: bool, params: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(per_class=str(per_class).lower(), params=json.dumps(params)))
    return path


def _run_generator_jobs(tmp_path: Path, recipe: Path):
    """Plan the recipe and run its prepare_data, train_generator and sample jobs with the real job code."""
    jobs = plan_study(load_recipe(recipe))
    db_path = tmp_path / "x.db"
    db = open_store(db_path)
    submit_study(db, "pretrained", None, recipe.read_text(), {}, jobs)
    run = {}
    for kind in ("prepare_data", "train_generator", "sample"):
        job = next(j for j in jobs if j.kind == kind)
        job_function(kind)(JobContext(key=job.key, kind=kind, config=job.config, db=db, db_path=db_path,
                                      deps=load_job_deps(db, job.key)))
        run[kind] = job
    return db, artifact_root(db_path), run


def _pngs(db, root: Path, sample_key: str, class_name: str) -> np.ndarray:
    rows = sorted(load_artifacts(db, sample_key, kind="sample", class_name=class_name), key=lambda r: r["path"])
    return np.stack([np.asarray(Image.open(root / r["path"])) for r in rows])


def test_per_class_ddpm_pipelines_are_recorded_and_sampled_by_the_real_jobs(tmp_path, ddpm_root):
    local = shutil.copytree(ddpm_root, tmp_path / "models" / "ddpm")
    recipe = _recipe(tmp_path, True, {"pipeline": "models/ddpm", "inference_steps": 3, "sample_batch_size": 2})
    db, root, run = _run_generator_jobs(tmp_path, recipe)

    checkpoint, = load_artifacts(db, run["train_generator"].key, kind="checkpoint")
    manifest = json.loads((root / checkpoint["path"] / "generator.json").read_text())
    assert manifest["pipelines"]["viral"]["folder"] == str(local / "viral")  # relative to the recipe, made absolute
    assert manifest["pipelines"]["viral"]["class"] == "DDPMPipeline"
    assert manifest["pipelines"]["viral"]["components"] == ["scheduler", "unet"]

    impl = get_generator("pretrained_pipeline").factory()
    for class_index, name in enumerate(CLASSES):
        images = _pngs(db, root, run["sample"].key, name)
        assert images.shape == (3, 16, 16) and images.dtype == np.uint8 and images.std() > 0
        # Batches of 2: the job's PNGs are exactly what the generator gives for each batch's seed.
        first = impl.sample(root / checkpoint["path"], name, 2, batch_seed(4, class_index, 0), "cpu")
        np.testing.assert_array_equal(images[:2], first)
    assert not np.array_equal(*(_pngs(db, root, run["sample"].key, name) for name in CLASSES))

    # Image i comes from seed + i: the same seed gives the same images whatever the count; another seed others.
    again = impl.sample(root / checkpoint["path"], "healthy", 3, 11, "cpu")
    np.testing.assert_array_equal(again[:2], impl.sample(root / checkpoint["path"], "healthy", 2, 11, "cpu"))
    assert not np.array_equal(again, impl.sample(root / checkpoint["path"], "healthy", 3, 12, "cpu"))


def test_stable_diffusion_with_lora_samples_each_class_with_its_prompt(tmp_path, sd_with_lora):
    sd, lora = sd_with_lora
    params = {"pipeline": str(sd), "lora": str(lora), "lora_scale": 1.0, "inference_steps": 2,
              "prompts": {"healthy": "clear lungs", "viral": "hazy lungs"}, "resolution": 24, "sample_batch_size": 3}
    db, root, run = _run_generator_jobs(tmp_path, _recipe(tmp_path, False, params))
    checkpoint, = load_artifacts(db, run["train_generator"].key, kind="checkpoint")
    manifest = json.loads((root / checkpoint["path"] / "generator.json").read_text())
    assert manifest["pipelines"]["healthy"]["class"] == "StableDiffusionPipeline" and manifest["lora"] == str(lora)
    healthy, viral = (_pngs(db, root, run["sample"].key, c) for c in CLASSES)
    assert healthy.shape == viral.shape == (3, 24, 24)  # 32 px from the pipeline, resized to `resolution`
    assert not np.array_equal(healthy, viral)  # same seeds, other prompt

    def sample(**changes):
        impl = get_generator("pretrained_pipeline").factory()
        work = tmp_path / "direct" / json.dumps(changes, sort_keys=True).replace("/", "_")
        data = TrainImages(np.zeros((2, 8, 8), np.uint8), np.array([0, 1]), list(CLASSES))
        impl.train(PretrainedPipelineParams(**{**params, "resolution": None, **changes}), False, data, work, None,
                   "cpu", 0)
        return impl.sample(work, "viral", 2, 3, "cpu")

    with_lora, without = sample(), sample(lora=None)
    assert with_lora.shape == (2, 32, 32)
    assert not np.array_equal(with_lora, without)  # the adapters change the images
    np.testing.assert_array_equal(sample(lora_scale=0.0), without)  # scale 0 is the pipeline without them
    np.testing.assert_array_equal(sample(lora=str(lora / "pytorch_lora_weights.safetensors")), with_lora)
    assert not np.array_equal(sample(scheduler="ddim"), with_lora)  # another sampler, configured like the saved one


def test_missing_or_mismatched_folders_fail_at_recipe_check_naming_the_field(tmp_path, ddpm_root):
    shutil.copytree(ddpm_root, tmp_path / "models" / "ddpm")
    with pytest.raises(RecipeError, match=r"generators\[0\]\.params\.pipeline: .*models/nowhere is not a folder"):
        load_recipe(_recipe(tmp_path, True, {"pipeline": "models/nowhere"}))
    shutil.rmtree(tmp_path / "models" / "ddpm" / "viral")
    with pytest.raises(RecipeError, match=r"params\.pipeline: per_class is true, but .* no pipeline folder .* "
                                          r"for class viral"):
        load_recipe(_recipe(tmp_path, True, {"pipeline": "models/ddpm"}))
    with pytest.raises(RecipeError, match=r"params\.pipeline: .*models/ddpm is not a diffusers pipeline folder: "
                                          r"it has no model_index\.json \(with one pipeline folder per class"):
        load_recipe(_recipe(tmp_path, False, {"pipeline": "models/ddpm"}))
    with pytest.raises(RecipeError, match=r"is one pipeline .* but per_class is true"):
        load_recipe(_recipe(tmp_path, True, {"pipeline": "models/ddpm/healthy"}))
    with pytest.raises(RecipeError, match=r"generators\[0\]\.params\.lora: .*no-lora does not exist"):
        load_recipe(_recipe(tmp_path, True, {"pipeline": "models/ddpm", "lora": "no-lora"}))


def test_keys_hash_the_pipeline_folder_not_its_place(tmp_path, ddpm_root):
    def train_key(folder: str) -> str:
        recipe = _recipe(tmp_path, True, {"pipeline": folder, "inference_steps": 3})
        return next(j for j in plan_study(load_recipe(recipe)) if j.kind == "train_generator").key

    shutil.copytree(ddpm_root, tmp_path / "a")
    key = train_key("a")
    shutil.copytree(ddpm_root, tmp_path / "b")
    assert train_key("b") == key  # moved: the same pipelines, so the same job
    config = tmp_path / "b" / "viral" / "scheduler" / "scheduler_config.json"
    config.write_text(config.read_text().replace('"num_train_timesteps": 50', '"num_train_timesteps": 40'))
    assert train_key("b") != key  # edited in place: another job


def test_an_unconditional_pipeline_for_several_classes_or_with_lora_fails_at_recipe_check(tmp_path, ddpm_root,
                                                                                           sd_with_lora):
    shutil.copytree(ddpm_root, tmp_path / "models" / "ddpm")
    with pytest.raises(RecipeError, match=r"params\.pipeline: .*healthy is an unconditional pipeline, which cannot "
                                          r"tell classes apart"):
        load_recipe(_recipe(tmp_path, False, {"pipeline": "models/ddpm/healthy"}))
    with pytest.raises(RecipeError, match=r"params\.lora: LoRA weights apply to text-conditioned"):
        load_recipe(_recipe(tmp_path, True, {"pipeline": "models/ddpm", "lora": str(sd_with_lora[1])}))
    (tmp_path / "models" / "ddpm" / "viral" / "model_index.json").write_text("{not json")
    with pytest.raises(RecipeError, match=r"params\.pipeline: .*viral/model_index\.json is not valid JSON"):
        load_recipe(_recipe(tmp_path, True, {"pipeline": "models/ddpm"}))


def test_a_study_with_a_pretrained_pipeline_runs_end_to_end(tmp_path, ddpm_root, monkeypatch):
    """Image quality and the classifier arms read its samples as they read a trained generator's."""
    from typer.testing import CliRunner

    from xaug.engine.cli import load_commands
    from xaug.store.jobs import list_jobs
    from xaug.store.quality import load_quality

    shutil.copytree(ddpm_root, tmp_path / "models" / "ddpm")
    recipe = _recipe(tmp_path, True, {"pipeline": "models/ddpm", "inference_steps": 2, "sample_batch_size": 4})
    recipe.write_text(recipe.read_text().replace("[{model: resnet10t}]", "[{model: test_resnet, epochs: 1}]")
                      + "quality: {features: pixels, n_per_class: 3, min_images: 2, kid_subset_size: 2}\n")
    monkeypatch.setenv("XAUG_STORE", str(tmp_path / "study.db"))
    out = CliRunner().invoke(load_commands(), ["run", str(recipe)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    db = open_store(tmp_path / "study.db")
    jobs = list_jobs(db, study="pretrained")
    assert {j["status"] for j in jobs} == {"done"}
    sample = next(j for j in jobs if j["kind"] == "sample")
    synthetic = [j for j in jobs if j["kind"] == "train_classifier" and sample["key"] in load_job_deps(db, j["key"])]
    assert len(synthetic) == 1 and "mine +3" in synthetic[0]["label"]
    quality = next(j for j in jobs if j["kind"] == "image_quality")
    assert {row["class_name"] for row in load_quality(db, quality["key"])} >= {"healthy", "viral"}
