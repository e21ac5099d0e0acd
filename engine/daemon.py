"""`xaug-engine`: the headless engine (placeholder until the engine lands)."""


def main() -> None:
    """Entry point of xaug-engine."""
    raise SystemExit("xaug-engine: the durable queue engine is not built yet; use `xaug run RECIPE` meanwhile.")
