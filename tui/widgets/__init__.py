"""Widgets of the xaug TUI: the job table, the engine bar, curve plots, the step slider and image helpers."""
