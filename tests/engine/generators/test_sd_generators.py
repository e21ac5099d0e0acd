"""Stable Diffusion fine-tune, DreamBooth and LoRA on a tiny random SD: train 2 steps -> stop -> resume -> sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_sd import CLASSES, RecordingHooks, tiny_images, tiny_sd_dir

from xaug.engine.checkpoint import load_checkpoint
from xaug.store.errors import WeightsError
from xaug.engine.generators.registry import get_generator
from xaug.engine.generators.sd_sampling import load_pipeline, make_scheduler, to_grey_uint8

# Cheap settings: 2 optimizer steps, a checkpoint every step, 1-2 denoising steps when sampling.
CHEAP = dict(resolution=32, steps=2, batch_size=2, checkpoint_every=1, grid_every=2, grid_per_class=1,
             grid_inference_steps=1, inference_steps=2, sample_batch_size=2, save_precision="fp32")


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    return tiny_sd_dir(str(tmp_path_factory.getbasetemp()))


def _params(name, base, **extra):
    entry = get_generator(name)
    return entry.factory(), entry.config_class.model_validate({**CHEAP, "base_model": str(base), **extra})


def _no_pickles(folder):
    return [p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]


def test_finetune_stop_resume_equals_uninterrupted_and_samples(tiny_sd, tmp_path):
    gen, params = _params("sd_finetune", tiny_sd)
    data = tiny_images()
    hooks = RecordingHooks(stop_at=1)
    first = gen.train(params, False, data, tmp_path / "a", hooks, "cpu", 0)
    assert (first.finished, first.step, hooks.steps) == (False, 1, [1])
    resume = tmp_path / "a" / "resume" / "all"
    saved = load_checkpoint(resume)
    assert saved.step == 1 and {"state.json", "state.safetensors"} <= {p.name for p in saved.path.iterdir()}
    assert (saved.path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    with pytest.raises(WeightsError, match="not finished"):
        gen.sample(first.checkpoint, "viral", 1, 0, "cpu")

    hooks = RecordingHooks()
    done = gen.train(params, False, data, tmp_path / "a", hooks, "cpu", 0)
    assert (done.finished, done.step, hooks.steps) == (True, 2, [2])
    assert not resume.exists() and _no_pickles(tmp_path / "a") == []
    step, grid, names = hooks.grids[-1]
    assert step == 2 and grid.shape == (2, 32, 32) and grid.dtype == np.uint8 and names == CLASSES

    straight = gen.train(params, False, data, tmp_path / "b", RecordingHooks(), "cpu", 0)
    resumed_w = load_file(str(done.checkpoint / "all" / "unet" / "diffusion_pytorch_model.safetensors"))
    straight_w = load_file(str(straight.checkpoint / "all" / "unet" / "diffusion_pytorch_model.safetensors"))
    base_w = load_file(str(tiny_sd / "unet" / "diffusion_pytorch_model.safetensors"))
    assert max((resumed_w[k] - straight_w[k]).abs().max().item() for k in base_w) < 1e-6
    assert max((resumed_w[k] - base_w[k]).abs().max().item() for k in base_w) > 0  # training changed the UNet

    pipe, _ = load_pipeline(gen.method, done.checkpoint, "all", "cpu")  # sampling uses the trained UNet
    name = next(k for k in resumed_w if (resumed_w[k] != base_w[k]).any())
    assert torch.equal(pipe.unet.state_dict()[name], resumed_w[name])

    images = gen.sample(done.checkpoint, "viral", 3, 5, "cpu")
    assert images.shape == (3, 32, 32) and images.dtype == np.uint8 and images.std() > 0
    assert np.array_equal(images, gen.sample(done.checkpoint, "viral", 3, 5, "cpu"))
    assert np.array_equal(images[1:], gen.sample(done.checkpoint, "viral", 2, 6, "cpu"))  # image i uses seed + i
    assert not np.array_equal(images[0], gen.sample(done.checkpoint, "healthy", 1, 5, "cpu")[0])
    pndm = gen.sample(done.checkpoint, "viral", 1, 5, "cpu", scheduler="pndm", inference_steps=3)
    assert pndm.shape == (1, 32, 32) and not np.array_equal(pndm[0], images[0])
    with pytest.raises(ValueError, match="trained classes: healthy, viral"):
        gen.sample(done.checkpoint, "fungal", 1, 0, "cpu")


def test_lora_resumes_and_loads_into_plain_diffusers(tiny_sd, tmp_path):
    from diffusers import StableDiffusionPipeline

    gen, params = _params("lora", tiny_sd, lr=1e-2, rank=4, alpha=8)
    data = tiny_images()
    first = gen.train(params, False, data, tmp_path, RecordingHooks(stop_at=1), "cpu", 0)
    assert not first.finished and (load_checkpoint(tmp_path / "resume" / "all").path / "lora_peft.safetensors").is_file()
    hooks = RecordingHooks()
    done = gen.train(params, False, data, tmp_path, hooks, "cpu", 0)
    assert done.finished and hooks.steps == [2] and _no_pickles(tmp_path) == []
    lora_dir = done.checkpoint / "all" / "lora"
    saved = load_file(str(next(lora_dir.glob("*.safetensors"))))
    assert saved and all(k.startswith("unet.") for k in saved)

    prompt = json.loads((done.checkpoint / "manifest.json").read_text())["prompts"]["viral"]
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = make_scheduler("dpmsolver++", pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)

    def run():
        return pipe(prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(0), height=32, width=32,
                    output_type="np").images

    before = run()
    pipe.load_lora_weights(lora_dir)
    after = run()
    assert np.abs(after - before).max() > 1e-3
    config = next(iter(pipe.unet.peft_config.values()))
    assert (config.r, config.lora_alpha) == (4, 8)
    ours = gen.sample(done.checkpoint, "viral", 1, 0, "cpu")
    assert np.abs(ours.astype(int) - to_grey_uint8(after).astype(int)).max() <= 1


def test_dreambooth_per_class_with_prior_preservation(tiny_sd, tmp_path):
    gen, params = _params("dreambooth", tiny_sd, prior_preservation=True, num_class_images=2, class_image_steps=1,
                          lr=1e-3)
    data = tiny_images()
    hooks = RecordingHooks(stop_at=1)
    first = gen.train(params, False, data, tmp_path, hooks, "cpu", 0)  # per_class is forced true
    assert not first.finished and hooks.steps == [1] and "prior_loss" in hooks.losses[0]
    hooks = RecordingHooks()
    done = gen.train(params, False, data, tmp_path, hooks, "cpu", 0)
    assert done.finished and done.step == 4 and hooks.steps == [2, 3, 4]
    manifest = json.loads((done.checkpoint / "manifest.json").read_text())
    assert manifest["units"] == {"healthy": ["healthy"], "viral": ["viral"]}
    assert manifest["prompts"]["viral"] == "sks An x-ray image of the lung with viral pneumonia"
    for c in CLASSES:
        assert len(list((tmp_path / "class_images" / c).glob("*.png"))) == 2
        assert (done.checkpoint / c / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert [names for _, _, names in hooks.grids] == [["healthy"], ["viral"]]
    healthy = gen.sample(done.checkpoint, "healthy", 2, 0, "cpu")
    viral = gen.sample(done.checkpoint, "viral", 2, 0, "cpu")
    assert healthy.shape == viral.shape == (2, 32, 32) and not np.array_equal(healthy, viral)


def test_a_class_without_images_fails_before_the_base_model_loads(tiny_sd, tmp_path, monkeypatch):
    from xaug.engine.generators import sd_training
    from xaug.engine.generators.base import TrainImages
    from xaug.store.errors import DataError

    def load_parts(*args, **kwargs):
        raise AssertionError("the base model was loaded before the data were checked")

    monkeypatch.setattr(sd_training, "load_parts", load_parts)
    gen, params = _params("dreambooth", tiny_sd)
    data = tiny_images()
    only_healthy = TrainImages(data.images[data.labels == 0], data.labels[data.labels == 0], data.classes)
    with pytest.raises(DataError, match="class 'viral' has no training images"):
        gen.train(params, True, only_healthy, tmp_path, RecordingHooks(), "cpu", 0)
    assert not (tmp_path / "model" / "healthy").exists()  # nor did the first class train


def test_finetune_text_encoder_with_accumulation_and_uncached_latents(tiny_sd, tmp_path):
    gen, params = _params("sd_finetune", tiny_sd, train_text_encoder=True, gradient_accumulation=2,
                          cache_latents=False, snr_gamma=None, gradient_checkpointing=False, lr=1e-3)
    data = tiny_images()
    assert not gen.train(params, False, data, tmp_path, RecordingHooks(stop_at=1), "cpu", 0).finished
    assert (load_checkpoint(tmp_path / "resume" / "all").path / "text_encoder").is_dir()
    done = gen.train(params, False, data, tmp_path, RecordingHooks(), "cpu", 0)
    te = load_file(str(next((done.checkpoint / "all" / "text_encoder").glob("*.safetensors"))))
    base = load_file(str(next((tiny_sd / "text_encoder").glob("*.safetensors"))))
    assert any((te[k].float() - base[k].float()).abs().max() > 0 for k in base if k in te)
    pipe, _ = load_pipeline(gen.method, done.checkpoint, "all", "cpu")
    name = next(k for k in base if k in te and (te[k].float() != base[k].float()).any())
    assert torch.equal(pipe.text_encoder.state_dict()[name], te[name].float())
    assert gen.sample(done.checkpoint, "healthy", 1, 0, "cpu").shape == (1, 32, 32)


def test_lora_through_the_train_generator_and_sample_jobs(tiny_sd, tmp_path):
    """The registry path the engine takes: a recipe's params dict -> train_generator job -> sample job -> PNGs."""
    from types import SimpleNamespace

    from xaug.engine.data.prepared import prepare_dataset
    from xaug.engine.jobs import job_function
    from xaug.engine.jobs.context import JobContext
    from xaug.engine.recipe.schema import DatasetConfig, GeneratorSpec, PhantomConfig, SplitsConfig
    from xaug.store import artifact_root, open_store
    from xaug.store.artifacts import load_artifacts
    from xaug.store.jobs import submit_study
    from xaug.store.metrics import load_metrics

    def job(key, kind, config, deps=()):
        return SimpleNamespace(key=key, kind=kind, label=kind, config=config, priority=0, max_attempts=3,
                               gpus_needed=0, gpu_memory_mb=None, memory_group=None, deps=list(deps))

    db_path = tmp_path / "x.db"
    db = open_store(db_path)
    dataset = DatasetConfig(source="phantom", image_size=32, classes=CLASSES,
                            phantom=PhantomConfig(scale=0.1, native_size=64))
    splits = SplitsConfig(folds=2)
    prep = job("p" * 64, "prepare_data", {"dataset": dataset.model_dump(mode="json"),
                                          "splits": splits.model_dump(mode="json")})
    spec = GeneratorSpec(name="tiny-lora", model="lora", params={**CHEAP, "base_model": str(tiny_sd)})
    common = {"generator": spec.model_dump(mode="json"), "fold": 0, "classes": CLASSES}
    train = job("l" * 64, "train_generator", {**common, "seed": 0, "image_size": 32, "amp": False}, [prep.key])
    sample = job("s" * 64, "sample", {**common, "seed": 3, "n_per_class": 2}, [train.key])
    submit_study(db, "s", None, "name: s", {}, [prep, train, sample])
    prepare_dataset(dataset, splits, artifact_root(db_path) / "jobs" / "prepare_data" / prep.key[:16])

    def ctx(j, deps):
        return JobContext(key=j.key, kind=j.kind, config=j.config, db=db, db_path=db_path,
                          deps={d.key: {"kind": d.kind, "config": d.config} for d in deps})

    job_function("train_generator")(ctx(train, [prep]))
    assert [row["step"] for row in load_metrics(db, train.key, "loss")] == [1, 2]
    assert [g["step"] for g in load_artifacts(db, train.key, kind="grid")] == [2]
    job_function("sample")(ctx(sample, [train]))
    rows = load_artifacts(db, sample.key, kind="sample")
    assert len(rows) == 4 and {r["class_name"] for r in rows} == set(CLASSES)


def test_lora_scale_zero_samples_the_base_model_and_one_the_adapter(tiny_sd, tmp_path):
    from diffusers import StableDiffusionPipeline

    gen, params = _params("lora", tiny_sd, lr=5e-2, rank=4, lora_scale=0.5)
    done = gen.train(params, False, tiny_images(), tmp_path, RecordingHooks(), "cpu", 0)
    assert json.loads((done.checkpoint / "manifest.json").read_text())["sampling"]["lora_scale"] == 0.5
    prompt = json.loads((done.checkpoint / "manifest.json").read_text())["prompts"]["viral"]
    base = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    base.scheduler = make_scheduler("dpmsolver++", base.scheduler.config)
    base.set_progress_bar_config(disable=True)
    base_images = to_grey_uint8(base(prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                                     height=32, width=32, output_type="np").images)

    zero = gen.sample(done.checkpoint, "viral", 1, 0, "cpu", lora_scale=0.0)
    half = gen.sample(done.checkpoint, "viral", 1, 0, "cpu")  # the recipe's 0.5, from the manifest
    full = gen.sample(done.checkpoint, "viral", 1, 0, "cpu", lora_scale=1.0)
    assert np.abs(zero.astype(int) - base_images.astype(int)).max() <= 1
    assert np.abs(full.astype(int) - base_images.astype(int)).max() > 2
    assert np.abs(half.astype(int) - full.astype(int)).max() > 0


def test_dreambooth_paper_and_xaug_prompts():
    """The paper's design trains and samples with the plain class prompt; xaug's puts an identifier in front."""
    from xaug.engine.generators.dreambooth import DreamBoothConfig, DreamBoothMethod
    from xaug.engine.generators.driver import Unit
    from xaug.engine.generators.sd_params import PAPER_PROMPTS

    unit, method = Unit("viral", ["viral"]), DreamBoothMethod()
    paper = DreamBoothConfig(identifier="", prior_preservation=True)
    xaug = DreamBoothConfig(identifier="sks", prior_preservation=True)
    assert method.training_prompts(paper, unit) == {"viral": PAPER_PROMPTS["viral"]}
    assert method.training_prompts(xaug, unit) == {"viral": "sks " + PAPER_PROMPTS["viral"]}
