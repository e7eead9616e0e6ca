"""User-facing errors.

Anything the user can cause (a bad spec, a missing file, a malformed input
line) raises a `TripostError`; the CLI prints its message as one line and
exits non-zero. Messages never contain secrets (no API keys, no headers).
"""

from __future__ import annotations


class TripostError(Exception):
    """An error with a message fit to show a user as one line."""

    exit_code = 2


class InputError(TripostError):
    """Bad input at a known place: names the source and, when known, the line."""

    def __init__(self, source: str, message: str, line: int | None = None):
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")
