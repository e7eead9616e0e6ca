"""Shared CLI plumbing."""

from __future__ import annotations

import json
import sys
from typing import Any

from tripost.jsonl import open_input, read_jsonl

__all__ = ["emit", "open_input", "read_jsonl"]


def emit(obj: Any) -> None:
    """One JSON object a line on stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
