"""The quickstart recipe stays a complete study (baseline, both generators, duplicate control, image quality,
analysis) while keeping the work that makes it quick: three folds, two classifiers, small generators (a 32 px
DDPM, a 64 px GAN) whose samplers are the ones that stay stable after a short training."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from xaug.engine.generators.registry import get_generator
from xaug.engine.planner import plan_study
from xaug.engine.recipe import load_recipe

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"


def test_quickstart_plans_the_whole_study_in_68_jobs():
    loaded = load_recipe(QUICKSTART)
    kinds = Counter(job.kind for job in plan_study(loaded))
    # 3 folds x 2 classifiers x (baseline, gan, ddpm, duplicate) arms; 3 folds x 2 generators.
    assert kinds == {"prepare_data": 1, "train_generator": 6, "sample": 6, "image_quality": 6,
                     "train_classifier": 24, "evaluate": 24, "analyse": 1}
    labels = [job.label for job in plan_study(loaded)]
    assert any("duplicate" in label for label in labels) and any("baseline" in label for label in labels)


def test_quickstart_generators_are_small_and_sample_what_image_quality_scores():
    recipe = load_recipe(QUICKSTART).recipe
    assert {g.model for g in recipe.generators} == {"gan", "ddpm"}
    for gen in recipe.generators:
        params = get_generator(gen.model).config_class(**gen.params)
        # The GAN needs 64 px for rib-like texture; it stays cheap with few channels and batches of 2.
        assert params.resolution == (64 if gen.model == "gan" else 32)
        assert params.steps * params.batch_size <= 6400
        # The sample job makes max(amounts) images per class; image_quality reads n_per_class of them.
        assert recipe.quality.n_per_class <= max(recipe.amounts_for(gen))
    ddpm = get_generator("ddpm").config_class(**next(g.params for g in recipe.generators if g.model == "ddpm"))
    # After a few hundred steps DPM-Solver++ (no x0 clipping) diverges to saturated noise; ancestral does not.
    assert ddpm.sampler == "ddpm" and ddpm.beta_schedule == "squaredcos_cap_v2"
    assert recipe.splits.folds == 3 and len(recipe.classifiers) == 2
