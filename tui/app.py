"""`xaug-tui`: the Textual cockpit (placeholder until the TUI lands)."""


def main() -> None:
    """Entry point of xaug-tui."""
    raise SystemExit("xaug-tui: the terminal UI is not built yet; use `xaug results STUDY` meanwhile.")
