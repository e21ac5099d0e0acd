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


class BenchError(XaugError):
    """A benchmark cannot run as asked (no GPU for a GPU benchmark, an unknown section): says what to do."""


PERMANENT_ERRORS = (RecipeError, DataError, WeightsError)
"""Failures that retrying cannot heal (bad data, missing weights, an invalid recipe): a job that raises one fails at
its first attempt, with its message. Anything else (out of memory, a killed worker) is retried."""


def is_permanent(exc: BaseException) -> bool:
    """Whether a job's failure would fail again on every retry."""
    return isinstance(exc, PERMANENT_ERRORS)
