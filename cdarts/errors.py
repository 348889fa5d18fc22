"""The kinds of bad input: what the commands report as one line and exit code 2.

Anything else that escapes a command is a bug (or a run that cannot go on) and keeps its traceback, so only these
types, never a bare ``ValueError`` or ``KeyError``, may say "the user's input is wrong". They subclass
``ValueError``, so code that catches ``ValueError`` around the library keeps working.
"""
from __future__ import annotations

from collections.abc import Sequence


class UserInputError(ValueError):
    """Input the user gave (config, data, files, command-line values) is wrong; the message says what and where."""


class ConfigError(UserInputError):
    """Everything wrong with a config or a command-line value, one ``path: problem`` line each."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class DataError(UserInputError):
    """A dataset that cannot be used as given: a bad folder, an unreadable image, a split too small to train on.

    Raised in a DataLoader worker, torch re-raises it in the main process with the worker's traceback folded into
    the message; the constructor keeps only the original one-line message.
    """

    def __init__(self, message: str) -> None:
        if "Original Traceback" in message:
            last = [line for line in message.splitlines() if line.strip()][-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


class FileError(UserInputError):
    """A file given to a command that cannot be used: corrupt, refused as untrusted, of the wrong kind, or not
    matching the model; the message names the file."""
