"""`tripost teach`: ask a teacher for feedback on attempts and an improvement."""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tqdm import tqdm

from tripost.cli._io import add_task_flag, add_teacher_flag, emit, read_jsonl
from tripost.errors import InputError
from tripost.tasks import problem_from_record
from tripost.teachers import TeacherOptions, add_teacher_flags, make_teacher
from tripost.teachers.usage import format_cost


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
    add_teacher_flag(p, required=True)
    add_task_flag(p)
    p.add_argument("file", nargs="?", default="-", help="JSON-lines file, or - for stdin (default)")
    add_teacher_flags(p)  # as collect's, and teacher.* in `tripost run`
    p.set_defaults(handler=cmd_teach)


def cmd_teach(args: argparse.Namespace) -> int:
    options = TeacherOptions.from_args(args)
    teacher = make_teacher(args.teacher, **options.teacher_kwargs())  # a wrong spec fails before stdin is read
    try:
        return _teach(args, teacher, options)
    finally:
        close = getattr(teacher, "close", None)
        if close is not None:
            close()


def _teach(args: argparse.Namespace, teacher: Any, options: TeacherOptions) -> int:
    source = "<stdin>" if args.file in (None, "-") else args.file
    records = list(read_jsonl(args.file, required=("question", "attempt")))
    # Every record is checked before the first request: a bad line costs nothing.
    items = []
    for lineno, record in records:
        if not isinstance(record["attempt"], str):
            raise InputError(source, "field 'attempt' must be a string", lineno)
        items.append((record, problem_from_record(args.task, record, source, lineno)))

    def teach_one(item: tuple[dict, Any]) -> tuple[dict, int]:
        """The output line of one attempt, and how many teacher answers were rejected."""
        record, problem = item
        rejected = 0
        attempt = record["attempt"]
        fb = teacher.feedback(problem, attempt)
        out: dict = {"id": record.get("id", problem.id), "feedback": fb.text, "rejected": fb.rejected}
        calls = list(fb.calls)
        if fb.feedback is None:
            rejected += 1
            out.update(first_error_step=None, correct=None, improved=None)
        else:
            out.update(first_error_step=fb.feedback.error_step, correct=fb.feedback.is_correct, improved=None)
            if not fb.feedback.is_correct:
                imp = teacher.improve(problem, attempt, fb.feedback)
                calls += imp.calls
                out["improved"] = imp.rationale
                if imp.rejected:
                    out["rejected"] = imp.rejected
                    rejected += 1
        out["calls"] = [c.to_dict() for c in calls]
        return out, rejected

    # Attempts are taught concurrently, as collect edits trajectories: up to
    # --teacher-concurrency at once (the teacher bounds its requests the same),
    # written in input order.
    n_wrong = n_rejected = 0
    pool = ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="teach")
    try:
        results = pool.map(teach_one, items)
        for out, rejected in tqdm(results, total=len(items), desc="teach", unit="attempt", disable=len(items) < 20, file=sys.stderr):
            n_rejected += rejected
            n_wrong += int(out["correct"] is False)
            emit(out)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a fatal teacher error sends no more requests
    ledger = getattr(teacher, "ledger", None)
    cost = f", cost {format_cost(ledger.total_cost(), ledger.unpriced_models())}" if ledger is not None else ""
    batched = sum(e["batched"] for e in ledger.to_dict().values()) if ledger is not None else 0
    if batched:  # teacher.batch: say what the batches saved
        cost += f" ({batched} answers from provider batches at half price; {format_cost(ledger.total_list_cost(), ledger.unpriced_models())} at list price)"
    print(f"taught {len(items)}: {n_wrong} wrong attempts improved, {n_rejected} teacher answers rejected{cost}", file=sys.stderr)
    return 0
