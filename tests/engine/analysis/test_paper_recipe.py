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
    assert [g.model for g in r.generators] == ["gan", "ddpm", "sd_finetune", "dreambooth", "lora"]
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


def test_paper_recipe_plans_every_arm():
    counts = Counter(job.kind for job in plan_study(load_recipe(PAPER)))
    arms = 1 + (4 * 5 + 7) + 7  # baseline, synthetic, duplicate controls (every amount used)
    assert counts["train_classifier"] == counts["evaluate"] == 5 * 3 * 5 * arms
    assert counts["image_quality"] == 5 * 5 and counts["analyse"] == 1
