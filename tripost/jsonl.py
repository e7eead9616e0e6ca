"""JSON-lines input with errors that name the file and the line."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from tripost.errors import InputError


def open_input(path: str | None) -> tuple[str, TextIO]:
    """(display name, stream) for FILE or `-`/None (stdin)."""
    if path in (None, "-"):
        return "<stdin>", sys.stdin
    try:
        return path, open(path, encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, expected a JSON-lines file") from None
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror}") from None


def read_jsonl(path: str | None, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; a line that is not
    a JSON object or lacks a required field is an `InputError` naming it."""
    name, stream = open_input(path)
    try:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(name, f"not valid JSON ({e.msg})", lineno) from None
            except RecursionError:  # a hostile line nested deeper than the parser's stack
                raise InputError(name, "nested too deeply to read", lineno) from None
            if not isinstance(obj, dict):
                raise InputError(name, "expected a JSON object", lineno)
            missing = [k for k in required if k not in obj]
            if missing:
                raise InputError(name, f"missing field {', '.join(repr(m) for m in missing)}", lineno)
            yield lineno, obj
    finally:
        if stream is not sys.stdin:
            stream.close()
