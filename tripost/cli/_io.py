"""Shared CLI plumbing."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.jsonl import open_input, read_jsonl

__all__ = ["check_out_file", "check_student_args", "emit", "open_input", "read_jsonl"]


def check_student_args(args: argparse.Namespace) -> None:
    """--student parses and --adapter is a PEFT folder: checked before any model loads."""
    from tripost.student.load import check_adapter_dir
    from tripost.student.spec import parse_spec

    parse_spec(args.student)
    if args.adapter:
        check_adapter_dir(args.adapter)


def check_out_file(out: str | Path | None, example: str, what: str = "file") -> None:
    """An --out that names an existing folder is an error (it must be a file)."""
    if out and Path(out).is_dir():
        raise TripostError(f"--out {out} is a folder; give a {what} name such as {Path(out) / example}")


def emit(obj: Any) -> None:
    """One JSON object a line on stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
