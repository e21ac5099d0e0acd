"""A step slider for periodic sample grids: left/right move through the recorded steps."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static


class StepSlider(Static):
    """Shows `step 400  ──────●────  3/5`; the screen sets `steps` and moves `index`."""

    index: reactive[int] = reactive(0)

    class StepChanged(Message):
        """The chosen step changed."""

        def __init__(self, index: int, step: int | None) -> None:
            super().__init__()
            self.index = index
            self.step = step

    def __init__(self, **kwargs) -> None:
        super().__init__("no sample grids yet", **kwargs)
        self.steps: list[int | None] = []

    def set_steps(self, steps: list[int | None]) -> None:
        """Set the available steps; keeps the position, or follows the newest step if it was on the last one."""
        at_end = not self.steps or self.index >= len(self.steps) - 1
        self.steps = list(steps)
        new_index = len(self.steps) - 1 if at_end else min(self.index, len(self.steps) - 1)
        if new_index == self.index:
            self._render_slider()
            self.post_message(self.StepChanged(self.index, self.current_step))
        self.index = max(new_index, 0)

    @property
    def current_step(self) -> int | None:
        """The step under the knob, or None when there are no steps."""
        return self.steps[self.index] if self.steps else None

    def move(self, delta: int) -> None:
        """Move the knob by `delta` steps, clamped to the ends."""
        if self.steps:
            self.index = min(max(self.index + delta, 0), len(self.steps) - 1)

    def watch_index(self) -> None:
        """Redraw and announce the new step."""
        self._render_slider()
        self.post_message(self.StepChanged(self.index, self.current_step))

    def _render_slider(self) -> None:
        """Draw the track with the knob."""
        if not self.steps:
            self.update("no sample grids yet")
            return
        width = 30
        pos = round(self.index / max(len(self.steps) - 1, 1) * (width - 1))
        text = Text(f"step {self.current_step}  ", style="bold")
        text.append("─" * pos, style="cyan")
        text.append("●", style="bold cyan")
        text.append("─" * (width - 1 - pos), style="dim")
        text.append(f"  {self.index + 1}/{len(self.steps)}   ←/→")
        self.update(text)
