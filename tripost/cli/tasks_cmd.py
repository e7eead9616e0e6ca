"""`tripost tasks list|sample|check`: the problem families and their step checkers."""

from __future__ import annotations

import argparse
import sys

from tripost.cli._io import add_problem_flags, add_task_flag, emit, problems_from_args, read_jsonl
from tripost.errors import InputError
from tripost.tasks import FAMILIES, PRESETS, SUBSETS, get_task, problem_from_record


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


__all__ = ["register"]
