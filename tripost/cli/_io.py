"""Shared CLI plumbing."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.jsonl import open_input, read_jsonl

__all__ = ["add_held_out_flags", "add_student_flags", "check_out_dir", "check_out_file", "check_student_args", "emit", "open_input", "read_jsonl"]


def add_student_flags(p: argparse.ArgumentParser) -> None:
    """--student, --adapter, --precision of the verbs that load the student to sample or score."""
    from tripost.student.load import PRECISIONS
    from tripost.student.spec import EMBEDDED_NAME, SPEC_HELP

    p.add_argument("--student", default=EMBEDDED_NAME, metavar="SPEC", help=f"{SPEC_HELP} (default: {EMBEDDED_NAME})")
    p.add_argument("--adapter", metavar="DIR", help="a PEFT adapter folder to load on the student")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="student weights precision (default auto: bf16 where the device computes it fast, else fp32)")


def add_held_out_flags(p: argparse.ArgumentParser, *, subset: str, n: int) -> None:
    """The problem flags of the verbs that measure on held-out problems (eval,
    gap): families, split, subset, how many, generated or from a file; read
    by `tripost.tasks.select_problems` with the held-out check."""
    from tripost.tasks import PRESETS, SPLITS

    p.add_argument("--task", required=True, metavar="FAMILY", help="a task family, several separated by commas, or 'all' (every generated family)")
    p.add_argument("--split", default="test", choices=SPLITS, help="problem split (default test; train needs --allow-train)")
    p.add_argument("--allow-train", action="store_true", help="allow the train split (not a held-out measurement)")
    p.add_argument("--subset", default=subset, choices=("seen", "unseen", "both"), help=f"seen, unseen or both difficulty subsets (default {subset})")
    p.add_argument("--n", type=int, default=n, help=f"problems per family and subset (default {n}; with --data: at most N from the file)")
    p.add_argument("--data", metavar="FILE.jsonl", help="problems from a JSON-lines file instead of generated ones")
    p.add_argument("--preset", default="small", choices=PRESETS, help="difficulty preset of generated problems (default small)")


def check_student_args(args: argparse.Namespace) -> None:
    """--student parses and --adapter is a PEFT folder: checked before any model loads."""
    from tripost.student.load import check_adapter_dir
    from tripost.student.spec import parse_spec

    parse_spec(args.student)
    if args.adapter:
        check_adapter_dir(args.adapter)


def check_out_file(out: str | Path | None, example: str, what: str = "file", overwrite: bool = True) -> None:
    """An --out file must be creatable: not a folder, in a folder we can write
    (made if missing). `overwrite=False`: an existing file is refused too (the
    verb offers --force to replace it)."""
    if not out:
        return
    path = Path(out)
    if path.is_dir():
        raise TripostError(f"--out {out} is a folder; give a {what} name such as {path / example}")
    if path.exists() and not overwrite:
        raise TripostError(f"--out {out} already exists; give a new name, or pass --force to overwrite it")
    if path.exists() and not os.access(path, os.W_OK):
        raise TripostError(f"--out {out}: the file is not writable")
    _check_creatable(path.parent, f"--out {out}")


def check_out_dir(out: str | Path) -> None:
    """An --out folder must be a folder we can write, or creatable as one.
    Checked before anything is loaded or written, so a wrong path costs one
    line, not a traceback after minutes of work. Nothing is created here."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise TripostError(f"--out {out} is a file, not a folder; give a folder name")
    _check_creatable(path, f"--out {out}")


def _check_creatable(path: Path, label: str) -> None:
    """`path` is a writable folder, or the nearest existing folder above it is
    writable (so `mkdir -p` will work) and nothing in the way is a file."""
    probe = path.absolute()
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise TripostError(f"{label}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise TripostError(f"{label}: cannot write in {probe} (permission denied)")


def emit(obj: Any) -> None:
    """One JSON object a line on stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
