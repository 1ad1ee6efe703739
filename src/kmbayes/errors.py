"""Errors that the CLI turns into a one-line message and exit code 2.

Messages are sanitised here, in one place, so that no input can make an
error message span lines, carry terminal escape codes, or echo a huge value:
see :func:`one_line`.
"""

from __future__ import annotations

import re

#: longest message printed (the whole line, after the ``kmbayes: error:`` prefix)
MESSAGE_MAX = 240
#: longest single quoted value or field echoed inside a message
VALUE_MAX = 80

# C0/C1 control characters (newline, ESC, DEL, CSI...) and Unicode line/paragraph
# separators and bidi overrides: anything that could break the line or change
# how a terminal renders the rest of it.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def one_line(text: str, limit: int = MESSAGE_MAX) -> str:
    """``text`` as one printable line of at most ``limit`` characters.

    Control and escape characters become ``?`` (so an arm id holding a
    newline or an ANSI escape cannot split the message or recolour the
    terminal), and long text is cut in the middle with ``...`` so both the
    field at the start and the tail of the reason survive.
    """
    s = _CONTROL.sub("?", str(text))
    if len(s) > limit:
        keep = limit - 3
        s = s[: keep - keep // 3] + "..." + s[len(s) - keep // 3:]
    return s


def short(value, limit: int = VALUE_MAX) -> str:
    """``repr`` of a value for a message, cut to ``limit`` characters."""
    r = value if isinstance(value, str) and value.startswith("<") else repr(value)
    r = _CONTROL.sub("?", r)
    return r if len(r) <= limit else r[: limit - 3] + "..."


class InputError(ValueError):
    """Malformed or inconsistent user input.

    Parameters
    ----------
    field : str
        Dotted path of the offending field, e.g. ``arms.combined.events``.
    message : str
        What is wrong with it, in a few words.

    Notes
    -----
    ``str(err)`` is always one line under :data:`MESSAGE_MAX` characters
    with control characters replaced (the field is cut to :data:`VALUE_MAX`),
    whatever the field and message hold.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(one_line(f"{one_line(str(field), VALUE_MAX)}: {message}"))


class FitFailedError(RuntimeError):
    """A fit failed its diagnostic gate even after a retry with safer settings."""
