"""Small modal prompts: one line of text (recipe path, filter, rater name)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class TextPrompt(ModalScreen[str | None]):
    """Asks for one line; dismisses with the text on Enter, or None on Escape."""

    BINDINGS = [("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(self.question)
            yield Input(value=self.value, placeholder=self.placeholder, id="prompt-input")
            yield Label("Enter to confirm, Escape to cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter: return the text."""
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        """Escape: return None."""
        self.dismiss(None)
