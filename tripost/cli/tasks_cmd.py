"""`tripost tasks list|sample|check|import`: the problem families, their step checkers, and BIG-bench files as --data files."""

from __future__ import annotations

import argparse
import json
import os
import sys

from tripost.cli._io import add_problem_flags, add_task_flag, emit, problems_from_args, read_jsonl
from tripost.errors import InputError, TripostError
from tripost.fileio import atomic_write_text
from tripost.tasks import FAMILIES, PRESETS, SUBSETS, get_task, problem_from_record
from tripost.tasks.bigbench import FAMILY_OF_TASK, family_of, read_bigbench


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list, sample and check task problems", description="Task families: list them, sample problems, check rationales step by step.")
    tsub = p.add_subparsers(dest="tasks_verb", metavar="ACTION")
    tsub.required = True

    ls = tsub.add_parser("list", help="list task families and their difficulty levels")
    ls.add_argument("--json", action="store_true", help="one JSON object per family")
    ls.set_defaults(handler=cmd_list)

    sp = tsub.add_parser(
        "sample",
        help="sample problems with gold rationales",
        description="Sample problems of a family; one JSON object a line with id, question, answer, rationale, difficulty, subset (and split, options, meta).",
    )
    add_problem_flags(sp, n=5, subset="seen", split="train", positional=True)
    sp.add_argument("--json", action="store_true", help="JSON lines (the default when stdout is not a terminal)")
    sp.set_defaults(handler=cmd_sample)

    ck = tsub.add_parser(
        "check",
        help="find the first wrong step of rationales",
        description=(
            "Read JSON lines with `question` and `rationale` (records from `tasks sample` work as they are; "
            "other records need `answer` too) and write one JSON line each with correct, first_error_step, "
            "segment and reason."
        ),
    )
    add_task_flag(ck, positional=True)
    ck.add_argument("file", nargs="?", default="-", help="JSON-lines file, or - for stdin (default)")
    ck.set_defaults(handler=cmd_check)

    im = tsub.add_parser(
        "import",
        help="a BIG-bench or BIG-Bench-Hard task file as a --data file",
        description=(
            "Convert a BIG-bench `task.json` or a BIG-Bench-Hard `bbh/TASK.json` (examples of input and target) into a JSON-lines "
            "--data file of held-out test problems, every row checked by the family that reads it; then e.g. "
            "`tripost eval --task word_sorting --data word_sorting.jsonl --n 250`. Tasks read: "
            + ", ".join(f"{k}* -> {v}" for k, v in FAMILY_OF_TASK.items()) + "; any other task with --task qa (its final answer "
            "checked, no steps). The files are not shipped with tripost."
        ),
    )
    im.add_argument("file", help="the task file (BIG-bench's TASK/task.json or BIG-Bench-Hard's bbh/TASK.json)")
    im.add_argument("--task", default=None, metavar="FAMILY", help=f"a task family: {', '.join(FAMILIES)} (default: the one that reads the file's task, from its name)")
    im.add_argument("--out", required=True, metavar="FILE.jsonl", help="where the --data file goes")
    im.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    im.set_defaults(handler=cmd_import)


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for name in FAMILIES:
        task = get_task(name)
        levels = {preset: {s: task.levels(preset, s) for s in SUBSETS} for preset in PRESETS}
        rows.append({"family": name, "generated": bool(task.scripted), "levels": levels, "doc": (task.__class__.__doc__ or "").strip().splitlines()[0] if task.__class__.__doc__ else ""})
    if args.json:
        for r in rows:
            emit(r)
        return 0
    for r in rows:
        print(f"{r['family']}: {r['doc']}")
        if r["generated"]:
            for preset, subs in r["levels"].items():
                print(f"  {preset:5s}  seen: {', '.join(subs['seen'])}   unseen: {', '.join(subs['unseen'])}")
        else:
            print("  external problems only (--data FILE.jsonl)")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    problems = problems_from_args(args)
    as_json = args.json or not sys.stdout.isatty()
    for p in problems:
        if as_json:
            emit(p.to_dict())
        else:
            print(f"[{p.id}] {p.split}/{p.subset} difficulty={p.difficulty}\nQ: {p.question}\n{p.rationale}\n")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    source = "<stdin>" if args.file in (None, "-") else args.file
    n = n_correct = n_clean = 0
    for lineno, record in read_jsonl(args.file, required=("question", "rationale")):
        if not isinstance(record["rationale"], str):
            raise InputError(source, "field 'rationale' must be a string", lineno)
        problem = problem_from_record(args.task, record, source, lineno)
        check = task.check_steps(problem, record["rationale"])
        out = {"id": record.get("id", problem.id), **check.to_dict()}
        emit(out)
        n += 1
        n_correct += check.correct
        n_clean += check.first_error_step is None
    print(f"checked {n}: {n_correct} with a correct answer, {n_clean} with every step correct", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    family = get_task(args.task).name if args.task else family_of(args.file)
    rows = read_bigbench(args.file, family)
    if os.path.exists(args.out) and not args.force:
        raise TripostError(f"{args.out} exists; pass --force to overwrite it")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write_text(args.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(rows)} {family} problems (split test, subset seen) to {args.out}", file=sys.stderr)
    return 0


__all__ = ["register"]
