"""Named errors that the CLI and TUI show to a user once, cleanly, without a traceback."""


class XaugError(Exception):
    """Base class: a problem the user can fix, with a message that says what and where."""


class RecipeError(XaugError):
    """A recipe is invalid; the message lists every problem with file, line and key."""


class DataError(XaugError):
    """A dataset could not be read: names the file and what is wrong with it."""


class StoreError(XaugError):
    """The store could not be opened or is inconsistent."""


class WeightsError(XaugError):
    """Pretrained weights are missing locally; says where they were looked for and how to provide them."""


class EngineError(XaugError):
    """The engine could not start or a command to it failed."""
