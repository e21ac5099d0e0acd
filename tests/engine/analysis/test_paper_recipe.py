"""recipes/paper.yaml validates (generator params included) and plans the paper's full design."""

from collections import Counter
from pathlib import Path

from xaug.engine.generators.registry import get_generator
from xaug.engine.planner import plan_study
from xaug.engine.recipe import load_recipe

PAPER = Path(__file__).parents[3] / "recipes" / "paper.yaml"


def test_paper_recipe_encodes_the_design():
    loaded = load_recipe(PAPER)
    r = loaded.recipe
    assert [g.model for g in r.generators] == ["gan", "ddpm", "sd_finetune", "dreambooth", "dreambooth", "lora"]
    assert [c.model for c in r.classifiers] == ["resnet50", "efficientnet_b0", "efficientnet_b1", "convnext_tiny",
                                                 "convnext_small"]
    assert all(c.pretrained and c.image_size == 224 and c.lr == 1e-4 and c.batch_size == 8 for c in r.classifiers)
    assert len({c.epochs for c in r.classifiers}) == 1  # equal budgets
    gan, ddpm = r.generators[0], r.generators[1]
    assert r.amounts_for(gan) == [100, 250, 500, 750, 1000, 5000, 10000]
    assert r.amounts_for(ddpm) == [100, 250, 500, 750, 1000]
    assert gan.per_class and ddpm.per_class and r.generators[3].per_class
    assert ddpm.params["sampler"] == "ddpm" and ddpm.params["sample_steps"] == 250
    assert r.splits.folds == 5 and r.seeds == [0, 1, 2] and r.duplicate_control
    for gen in r.generators:  # params validate against each generator's registered schema
        get_generator(gen.model).config_class.model_validate(gen.params)


def test_paper_recipe_generators_are_the_papers_and_xaugs_variants_are_named_apart():
    r = load_recipe(PAPER).recipe
    by = {g.name: get_generator(g.model).config_class.model_validate(g.params) for g in r.generators}
    assert by["gan"].resolution == by["ddpm"].resolution == 256 == r.quality.image_size
    assert not by["gan"].ada_xflip and not by["gan"].ada_rotate90  # anatomy-preserving ADA
    assert by["dreambooth"].identifier == "" and by["dreambooth"].prior_preservation  # the paper: plain prompt
    assert by["dreambooth-xaug"].identifier == "sks" and by["dreambooth-xaug"].prior_preservation
    assert by["lora"].lora_scale in (0.5, 1.0)
    assert all(by[name].snr_gamma is None for name in ("sd-finetune", "dreambooth", "lora"))  # plain MSE


def test_paper_recipe_plans_every_arm():
    counts = Counter(job.kind for job in plan_study(load_recipe(PAPER)))
    arms = 1 + (5 * 5 + 7) + 7  # baseline, synthetic (five generators x 5 amounts + the GAN's 7), duplicate controls
    assert counts["train_classifier"] == counts["evaluate"] == 5 * 3 * 5 * arms
    assert counts["image_quality"] == 5 * 6 and counts["analyse"] == 1
