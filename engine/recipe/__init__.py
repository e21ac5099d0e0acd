"""Recipes: YAML study descriptions, validated once into a frozen `Recipe`."""

from xaug.engine.recipe.loader import LoadedRecipe, check_models, load_recipe, parse_recipe, recipe_json_schema
from xaug.engine.recipe.schema import Recipe

__all__ = ["LoadedRecipe", "Recipe", "check_models", "load_recipe", "parse_recipe", "recipe_json_schema"]
