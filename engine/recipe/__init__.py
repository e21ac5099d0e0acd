"""Recipes: YAML study descriptions, validated once into a frozen `Recipe`."""

from xaug.engine.recipe.loader import LoadedRecipe, load_recipe, parse_recipe, recipe_json_schema
from xaug.engine.recipe.schema import Recipe

__all__ = ["LoadedRecipe", "Recipe", "load_recipe", "parse_recipe", "recipe_json_schema"]
