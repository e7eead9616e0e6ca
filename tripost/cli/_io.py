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

__all__ = ["add_held_out_flags", "add_student_flags", "check_out_dir", "check_out_file", "check_student_args", "open_student", "emit", "open_input", "read_jsonl"]


def add_student_flags(p: argparse.ArgumentParser) -> None:
    """--student, --adapter, --precision of the verbs that load the student to sample or score."""
    from tripost.student.load import PRECISIONS
    from tripost.student.spec import EMBEDDED_NAME, SPEC_HELP

    p.add_argument("--student", default=EMBEDDED_NAME, metavar="SPEC", help=f"{SPEC_HELP} (default: {EMBEDDED_NAME})")
    p.add_argument("--adapter", metavar="DIR", help="a PEFT adapter folder to load on the student")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="student weights precision (default auto: bf16 where the device computes it fast, else fp32)")
    p.add_argument("--engine", default="", metavar="URL",
                   help="sample on a server instead of in this process: an OpenAI-compatible completions endpoint "
                        "(tripost serve-student, vLLM), e.g. http://127.0.0.1:8000/v1; its key from $TRIPOST_ENGINE_KEY")
    p.add_argument("--engine-model", default=None, metavar="NAME",
                   help="with --engine: the name the server gives the model or adapter to use (default: --student)")


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
    p.add_argument("--data", metavar="FILE.jsonl",
                   help="problems from a JSON-lines file instead of generated ones: its rows of --split (a row's 'split' field, else a hash of its question)")
    p.add_argument("--preset", default="small", choices=PRESETS, help="difficulty preset of generated problems (default small)")


def check_student_args(args: argparse.Namespace) -> None:
    """--student parses and --adapter is a PEFT folder: checked before any model loads."""
    from tripost.student.load import check_adapter_dir
    from tripost.student.spec import parse_spec

    parse_spec(args.student)
    engine = getattr(args, "engine", "")
    if engine and args.adapter:
        raise TripostError("with --engine the server holds the adapter: name it with --engine-model, not --adapter")
    if getattr(args, "engine_model", None) and not engine:
        raise TripostError("--engine-model goes with --engine URL")
    if engine and not engine.startswith(("http://", "https://")):
        raise TripostError(f"--engine {engine!r}: give the server's base URL, e.g. http://127.0.0.1:8000/v1")
    if args.adapter:
        check_adapter_dir(args.adapter)


def open_student(args: argparse.Namespace) -> Any:
    """The student the flags name: loaded here, or served at --engine."""
    if getattr(args, "engine", ""):
        from tripost.student.remote import load_remote_student

        return load_remote_student(args.student, args.engine, args.engine_model or args.student)
    from tripost.student import load_student

    return load_student(args.student, precision=args.precision, adapter=args.adapter)


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
