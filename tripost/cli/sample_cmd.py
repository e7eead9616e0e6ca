"""`tripost sample`: sample the student's attempts at task problems and check them.

One line per attempt (problem id, sample index, text, parsed answer, correct)
and a summary line (accuracy, tokens/s, and what produced them: student spec,
precision, adapter, sampling parameters).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from tripost.cli._io import (add_problem_flags, add_sampling_flags, add_student_flags, check_student_args, emit, open_student,
                             problems_from_args)
from tripost.student import PromptFormat, SamplingParams, build_prompts
from tripost.student.generate import DEFAULT_BATCH, GenerationStats, LocalBackend
from tripost.student.prompt import CHAT_MODES
from tripost.tasks import get_task


def register(sub: argparse._SubParsersAction) -> None:
    d = SamplingParams()  # the student's sampling defaults, written once there

    p = sub.add_parser(
        "sample",
        help="sample the student's attempts at task problems and check them",
        description="Sample attempts of the student at task problems, check each answer, and report accuracy and tokens/s.",
    )
    add_student_flags(p)
    add_problem_flags(p, n=10, subset="seen", split="train")
    add_sampling_flags(p, samples_per_problem=d.n, temperature=d.temperature, top_p=d.top_p, max_new_tokens=d.max_new_tokens,
                       batch_size=DEFAULT_BATCH)
    p.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)")
    p.add_argument("--chat", default=PromptFormat.chat, choices=CHAT_MODES, help=f"use the tokenizer's chat template (default: {PromptFormat.chat})")
    p.add_argument("--json", action="store_true", help="JSON lines (the default when stdout is not a terminal)")
    p.set_defaults(handler=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    # Everything cheap is checked before the model loads.
    params = SamplingParams(
        n=args.samples_per_problem,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        stop=tuple(args.stop),
        seed=args.seed,
    )
    fmt = PromptFormat(chat=args.chat)
    # --data rows of another split or subset are left out (tripost.tasks.select).
    problems = problems_from_args(args)
    check_student_args(args)
    student = open_student(args)
    prompts = build_prompts(student.tokenizer, [p.question for p in problems], fmt)
    if args.engine:  # the server samples: its own batching; throughput measured here, end to end
        t0 = time.perf_counter()
        results = student.generate(prompts, params)
        stats = GenerationStats(sequences=sum(len(r) for r in results), tokens=sum(g.n_tokens for r in results for g in r),
                                seconds=time.perf_counter() - t0)
    else:
        backend = LocalBackend(student, batch_size=args.batch_size, progress=True)
        results = backend.generate(prompts, params)
        stats = backend.last_stats

    as_json = args.json or not sys.stdout.isatty()
    n_correct = 0
    for problem, attempts in zip(problems, results):
        for g in attempts:
            answer = task.parse_answer(g.text)
            correct = bool(task.check_answer(problem, answer))
            n_correct += correct
            record: dict[str, Any] = {
                "record": "attempt",
                "problem_id": problem.id,
                "sample": g.sample_index,
                "text": g.text,
                "answer": answer,
                "correct": correct,
                "gold": problem.answer,
                "finish_reason": g.finish_reason,
                "n_tokens": g.n_tokens,
            }
            if as_json:
                emit(record)
            else:
                mark = "✓" if correct else "✗"
                print(f"[{mark}] {problem.id} #{g.sample_index}  answer={answer!r}  gold={problem.answer!r}  ({g.n_tokens} tokens, {g.finish_reason})")
                print("    " + g.text.strip().replace("\n", "\n    "))
    total = sum(len(a) for a in results)
    summary = {
        "record": "summary",
        **student.describe(),
        "task": args.task,
        "split": args.split,
        "subset": args.subset,
        "data": args.data,
        "problems": len(problems),
        "attempts": total,
        "correct": n_correct,
        "accuracy": n_correct / total if total else 0.0,
        "tokens": stats.tokens,
        "seconds": round(stats.seconds, 3),
        "tokens_per_s": round(stats.tokens_per_s, 2),
        "sampling": params.to_dict(),
        "chat": args.chat,
    }
    if as_json:
        emit(summary)
    else:
        print(
            f"accuracy {n_correct}/{total} = {summary['accuracy']:.1%}; {stats.tokens} tokens in {stats.seconds:.1f} s "
            f"= {stats.tokens_per_s:.1f} tokens/s ({summary['student']}, {summary['precision']}"
            + (f", adapter {summary['adapter']}" if summary["adapter"] else "")
            + ")"
        )
    return 0
