"""Errors that the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations


class InputError(ValueError):
    """Malformed or inconsistent user input.

    Parameters
    ----------
    field : str
        Dotted path of the offending field, e.g. ``arms.combined.events``.
    message : str
        What is wrong with it, in a few words.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class FitFailedError(RuntimeError):
    """A fit failed its diagnostic gate even after a retry with safer settings."""
