"""User-facing errors.

Anything the user can cause (a bad spec, a missing file, a malformed input
line) raises a `TripostError`; the CLI prints its message as one line and
exits non-zero. Messages never contain secrets (no API keys, no headers).

A message quotes the values it is about through `clip`, so a hostile value
(a 50 MB spec, a path, a field of a --data row) is named, not echoed; and a
`TripostError` bounds its own message (`MAX_MESSAGE_CHARS`), so one raised
with a whole value still prints as one short line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# A one-line error is read on a terminal: the longest honest ones (a list of
# the keys a config section knows) stay under this; anything longer is a
# quoted value that nobody clipped.
MAX_MESSAGE_CHARS = 2_000


def clip(value: Any, n: int = 60, show: Callable[[Any], str] = repr) -> str:
    """A value's repr (or `show(value)`) short enough for a one-line error."""
    text = show(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _bounded(message: str) -> str:
    """`message` itself, or its start and its end (what went wrong, and what
    to do) around the count of characters left out."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    keep = MAX_MESSAGE_CHARS // 2 - 40
    return f"{message[:keep]} ... [{len(message) - 2 * keep:,} characters left out] ... {message[-keep:]}"


class TripostError(Exception):
    """An error with a message fit to show a user as one line."""

    exit_code = 2

    def __init__(self, *args: Any):
        if len(args) == 1 and isinstance(args[0], str):
            args = (_bounded(args[0]),)
        super().__init__(*args)


class InputError(TripostError):
    """Bad input at a known place: names the source and, when known, the line."""

    def __init__(self, source: str, message: str, line: int | None = None):
        self.source = source
        self.line = line
        # A source is a file name the user gave, as long as the user liked.
        name = source if len(source) <= 300 else clip(source, 300)
        where = f"{name}:{line}" if line is not None else name
        super().__init__(f"{where}: {message}")
