"""`tripost teach`: ask a teacher for feedback on attempts and an improvement."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from tripost.cli._io import emit, read_jsonl
from tripost.cli.tasks_cmd import problem_from_record
from tripost.errors import InputError
from tripost.tasks import FAMILIES
from tripost.teachers import SPECS, make_teacher


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "teach",
        help="teacher feedback and improvement for attempts",
        description=(
            "Read JSON lines with `question` and `attempt` (plus `answer`, unless the record comes from "
            "`tripost tasks sample`) and write one JSON line each with the teacher's feedback and, for a wrong "
            "attempt, the improved rationale."
        ),
    )
    p.add_argument("--teacher", required=True, metavar="SPEC", help=f"teacher spec: {', '.join(SPECS)}")
    p.add_argument("--task", required=True, metavar="FAMILY", help=f"one of: {', '.join(FAMILIES)}")
    p.add_argument("file", nargs="?", default="-", help="JSON-lines file, or - for stdin (default)")
    p.set_defaults(handler=cmd_teach)


def cmd_teach(args: argparse.Namespace) -> int:
    teacher = make_teacher(args.teacher)
    source = "<stdin>" if args.file in (None, "-") else args.file
    records = list(read_jsonl(args.file, required=("question", "attempt")))
    n_wrong = n_rejected = 0
    for lineno, record in tqdm(records, desc="teach", unit="attempt", disable=len(records) < 20, file=sys.stderr):
        if not isinstance(record["attempt"], str):
            raise InputError(source, "field 'attempt' must be a string", lineno)
        problem = problem_from_record(args.task, record, source, lineno)
        attempt = record["attempt"]
        fb = teacher.feedback(problem, attempt)
        out: dict = {"id": record.get("id", problem.id), "feedback": fb.text, "rejected": fb.rejected}
        calls = list(fb.calls)
        if fb.feedback is None:
            n_rejected += 1
            out.update(first_error_step=None, correct=None, improved=None)
        else:
            out.update(first_error_step=fb.feedback.error_step, correct=fb.feedback.is_correct, improved=None)
            if not fb.feedback.is_correct:
                n_wrong += 1
                imp = teacher.improve(problem, attempt, fb.feedback)
                calls += imp.calls
                out["improved"] = imp.rationale
                if imp.rejected:
                    out["rejected"] = imp.rejected
                    n_rejected += 1
        out["calls"] = [c.to_dict() for c in calls]
        emit(out)
    print(f"taught {len(records)}: {n_wrong} wrong attempts improved, {n_rejected} teacher answers rejected", file=sys.stderr)
    return 0
