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
from tripost.runconfig import StudentSection, TasksSection, TeacherSection
from tripost.settings import add_flags, default_of
from tripost.sources.settings import CollectSettings
from tripost.student import load_student
from tripost.student.load import PRECISIONS, check_adapter_dir
from tripost.student.remote import load_remote_student
from tripost.student.spec import SPEC_HELP, parse_spec
from tripost.tasks import FAMILIES, PRESETS, SPLITS, SUBSETS, get_task, select_problems
from tripost.teachers import SPECS

__all__ = ["TRAIN_PRECISION_HELP", "add_bootstrap_flag", "add_problem_flags", "add_sampling_flags", "add_student_flags", "add_task_flag", "add_teacher_flag",
           "check_out_dir", "check_out_file", "check_student_args", "emit", "open_input", "open_student", "problems_from_args", "read_jsonl",
           "removed_flag"]

# The flags every verb shares are declared here once, one function a group,
# so that a flag means one thing in every verb that has it (issue 30): its
# name, help and choices are written here (or, for the sampling flags, in
# the settings section they come from); the defaults that rightly differ by
# verb (a measurement samples otherwise than a collection) are arguments,
# given where the verb registers.


# --precision is the student's number format for what the verb does: while
# it samples and scores (student.sample_precision, `add_student_flags`), or,
# in the verbs that train (train, replay --train), while it trains
# (train.precision), where auto picks differently.
TRAIN_PRECISION_HELP = ("number format of the student's weights while it trains (train.precision; auto: QLoRA nf4 on a GPU, "
                        "fp32 on a CPU with bf16 autocast where it is fast)")


def add_student_flags(p: argparse.ArgumentParser) -> None:
    """--student, --adapter, --precision, --engine of the verbs that load the
    student to sample or score, at `tripost run`'s [student] defaults."""

    d = StudentSection()
    g = p.add_argument_group("student (in `tripost run`: [student])")
    g.add_argument("--student", default=d.spec, metavar="SPEC", help=f"{SPEC_HELP} (default: {d.spec})")
    g.add_argument("--adapter", metavar="DIR", help="a PEFT adapter folder to load on the student")
    g.add_argument("--precision", default=d.sample_precision, choices=PRECISIONS,
                   help=f"number format of the student's weights while it samples and scores (student.sample_precision; "
                        f"default {d.sample_precision}: bf16 where the device computes it fast, else fp32)")
    g.add_argument("--engine", default=d.engine, metavar="URL",
                   help="sample on a server instead of in this process: an OpenAI-compatible completions endpoint "
                        "(tripost serve-student, vLLM), e.g. http://127.0.0.1:8000/v1; its key from $TRIPOST_ENGINE_KEY")
    g.add_argument("--engine-model", default=None, metavar="NAME",
                   help="with --engine: the name the server gives the model or adapter to use (default: --student)")


def add_task_flag(p: Any, *, several: bool = False, positional: bool = False) -> None:
    """The task family: --task FAMILY (several: a comma list, or 'all'), or,
    `positional`, the first argument (`tripost tasks sample FAMILY`); read as
    `args.task`."""

    help_text = ("a task family, several separated by commas, or 'all' (every generated family)" if several
                 else f"a task family: {', '.join(FAMILIES)}")
    if positional:
        p.add_argument("task", metavar="FAMILY", help=help_text)
    else:
        p.add_argument("--task", required=True, metavar="FAMILY", help=help_text)


def add_problem_flags(p: argparse.ArgumentParser, *, n: int, subset: str = "seen", split: str | None = None, held_out: bool = False,
                      positional: bool = False) -> None:
    """The problems a verb works on (`tripost run`'s [tasks]): family, split,
    difficulty subset, how many, the preset or a --data file, the seed; read
    back by `problems_from_args`. The verb's own defaults are the arguments:
    `n` problems per family and subset, the default `subset`, and either
    `held_out` (a measurement: --split defaults to test and the train split
    needs --allow-train; --task takes several families, --subset both) or
    one family and one subset, `split` the default of --split (None:
    training problems only, no --split flag). `positional`: the family is
    the first argument (`tripost tasks sample FAMILY`)."""

    g = p.add_argument_group("problems (in `tripost run`: [tasks])")
    add_task_flag(g, several=held_out, positional=positional)
    if held_out:
        split = "test"
    if split is not None:
        g.add_argument("--split", default=split, choices=SPLITS,
                       help=f"problem split (default {split}{'; train needs --allow-train' if held_out else ''})")
    if held_out:
        g.add_argument("--allow-train", action="store_true", help="allow the train split (not a held-out measurement)")
    g.add_argument("--subset", default=subset, choices=(*SUBSETS, "both") if held_out else SUBSETS,
                   help=f"difficulty subset: seen (the training difficulties) or unseen (harder ones){', or both' if held_out else ''} "
                        f"(default {subset})")
    one = "" if held_out else "; this verb takes one family and one subset, so N problems in all"
    g.add_argument("--n", type=int, default=n, metavar="N",
                   help=f"problems per family and subset{one} (default {n}; with --data: at most N per family from the file)")
    g.add_argument("--data", metavar="FILE.jsonl",
                   help="problems from a JSON-lines file instead of generated ones: its rows of the split and subset "
                        "(a row's 'split' field, else a hash of its question)")
    preset = default_of(TasksSection, "preset")
    g.add_argument("--preset", default=preset, choices=PRESETS, help=f"difficulty preset of generated problems (default {preset})")
    g.add_argument("--seed", type=int, default=0, help="seed of the problems drawn and of the sampling and resampling after them (default 0)")
    p.set_defaults(problems_held_out=held_out, **({"split": "train"} if split is None else {}), **({} if held_out else {"allow_train": False}))


def problems_from_args(args: argparse.Namespace) -> list[Any]:
    """The problems `add_problem_flags`' flags name: --n per family and
    subset, or at most --n per family from a --data file
    (tripost.tasks.select, as `tripost run` selects them), checked before
    any model loads."""

    if args.n < 1:
        raise TripostError("--n must be at least 1")
    several = args.problems_held_out  # a measurement takes several families
    names = [n.strip() for n in args.task.split(",") if n.strip()] if several else [args.task]
    if not names:
        raise TripostError("--task is empty; name a task family")
    if names == ["all"] and several:
        names = [f for f in FAMILIES if get_task(f).scripted]
    families = list(dict.fromkeys(get_task(n).name for n in names))  # an unknown family is one line here
    if args.data and len(families) != 1:
        raise TripostError("--data holds problems of one family; name exactly one with --task")
    subsets = SUBSETS if args.subset == "both" else (args.subset,)
    return select_problems(families, split=args.split, subsets=subsets, n=args.n, preset=args.preset, seed=args.seed, data=args.data,
                           held_out=args.problems_held_out, allow_train=args.allow_train)


# The student's sampling settings a verb can take: the [collect] keys of the
# same name (tripost/sources/settings.py), so --samples, --temperature,
# --top-p and --max-new-tokens have one flag and one help in every verb.
SAMPLING_KEYS = ("samples_per_problem", "temperature", "top_p", "max_new_tokens")


def add_sampling_flags(p: argparse.ArgumentParser, *, batch_size: int | None = None, **defaults: Any) -> None:
    """How the student samples: one flag per [collect] key named in
    `defaults` (`samples_per_problem=8, temperature=0.7, ...`: the keys this
    verb takes, at its own defaults), with the section's flag and help, read
    as `args.KEY`; and --batch-size (sequences decoded together) when
    `batch_size` is given. `tripost collect` takes the same keys from the
    same section (with every other [collect] key)."""

    unknown = set(defaults) - set(SAMPLING_KEYS)
    if unknown:
        raise ValueError(f"not a sampling key: {', '.join(sorted(unknown))}")
    g = p.add_argument_group("sampling")
    add_flags(g, CollectSettings, only=tuple(defaults), defaults=defaults)
    if batch_size is not None:
        g.add_argument("--batch-size", type=int, default=batch_size, metavar="N",
                       help=f"sequences the student decodes together (default {batch_size})")


def add_teacher_flag(p: argparse.ArgumentParser, *, required: bool = False, unset: bool = False, use: str = "") -> None:
    """--teacher SPEC (`tripost run`'s teacher.spec, at its default unless
    `required`; with `unset` a flag not given is None, so the verb can tell);
    `use` says what this verb uses the teacher for."""

    spec = default_of(TeacherSection, "spec")
    p.add_argument("--teacher", required=required, default=None if required or unset else spec, metavar="SPEC",
                   help=f"teacher spec{', ' + use if use else ''}: {', '.join(SPECS)} ({'required' if required else f'default {spec}'})")


def add_bootstrap_flag(p: argparse.ArgumentParser, default: int) -> None:
    """--bootstrap B of the measurements (eval, gap, sharpen eval)."""
    p.add_argument("--bootstrap", type=int, default=default, metavar="B", help=f"bootstrap resamples of the 95%% intervals (default {default})")


class _Removed(argparse.Action):
    """A flag this verb no longer has: one usage line naming what to write instead."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        parser.error(f"{option_string} {self.const}")


def removed_flag(p: argparse.ArgumentParser, flag: str, instead: str) -> None:
    """`flag` given to this verb is a usage error (exit 2) saying `instead`;
    it takes a value, so the line is the same whatever followed it."""
    p.add_argument(flag, action=_Removed, nargs="?", const=instead, dest="removed_" + flag.lstrip("-").replace("-", "_"), help=argparse.SUPPRESS)


def check_student_args(args: argparse.Namespace) -> None:
    """--student parses and --adapter is a PEFT folder: checked before any model loads."""

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
        return load_remote_student(args.student, args.engine, args.engine_model or args.student)

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
