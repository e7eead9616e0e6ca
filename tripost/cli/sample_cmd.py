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

from tripost.cli._io import add_student_flags, check_student_args, emit, open_student
from tripost.errors import TripostError
from tripost.tasks import FAMILIES, PRESETS, SPLITS, SUBSETS, get_task, select_problems


def register(sub: argparse._SubParsersAction) -> None:
    from tripost.student.generate import DEFAULT_BATCH, SamplingParams

    d = SamplingParams()  # the student's sampling defaults, written once there

    p = sub.add_parser(
        "sample",
        help="sample the student's attempts at task problems and check them",
        description="Sample attempts of the student at task problems, check each answer, and report accuracy and tokens/s.",
    )
    add_student_flags(p)
    p.add_argument("--task", required=True, metavar="FAMILY", help=f"one of: {', '.join(FAMILIES)}")
    p.add_argument("--split", default="train", choices=SPLITS)
    p.add_argument("--subset", default="seen", choices=SUBSETS)
    p.add_argument("--preset", default="small", choices=PRESETS, help="difficulty preset (default: small)")
    p.add_argument("--data", metavar="FILE.jsonl", help="read problems from a file instead of generating them (its rows of --split and --subset)")
    p.add_argument("--n", type=int, default=10, help="number of problems (default: 10)")
    p.add_argument("--samples", type=int, default=1, metavar="K", help="attempts per problem (default: 1)")
    p.add_argument("--temperature", type=float, default=d.temperature, help=f"sampling temperature; 0 = greedy (default: {d.temperature})")
    p.add_argument("--top-p", type=float, default=d.top_p, help=f"nucleus sampling mass (default: {d.top_p})")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help=f"tokens per attempt (default: {d.max_new_tokens})")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help=f"sequences decoded together (default: {DEFAULT_BATCH})")
    p.add_argument("--chat", default="auto", choices=("auto", "on", "off"), help="use the tokenizer's chat template (default: auto)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="JSON lines (the default when stdout is not a terminal)")
    p.set_defaults(handler=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    from tripost.student import PromptFormat, SamplingParams, build_prompts
    from tripost.student.generate import GenerationStats, LocalBackend

    if args.n < 1:
        raise TripostError("--n must be at least 1")
    task = get_task(args.task)
    # Everything cheap is checked before the model loads.
    params = SamplingParams(
        n=args.samples,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        stop=tuple(args.stop),
        seed=args.seed,
    )
    fmt = PromptFormat(chat=args.chat)
    # --data rows of another split or subset are left out (tripost.tasks.select).
    problems = select_problems([args.task], split=args.split, subsets=(args.subset,), n=args.n, preset=args.preset, seed=args.seed, data=args.data)
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
