"""`tripost eval`: accuracy with test-time self-improvement on held-out problems."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tripost.cli._io import (add_bootstrap_flag, add_problem_flags, add_sampling_flags, add_student_flags, check_out_file,
                             check_student_args, open_student, problems_from_args)
from tripost.errors import TripostError
from tripost.evaluate import EvalConfig, JournalMismatch, check_journal, eval_fingerprint, evaluate, journal_path, transcripts_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a student with test-time self-improvement",
        description=(
            "Greedy first attempt, then the student's own Feedback / Updated Answer until it says its answer is "
            "correct, makes no progress, repeats itself or reaches --max-turns. The gold answer is used only for "
            "scoring. Reports first and final accuracy, how often the student revised, fixed a wrong answer or broke "
            "a right one, the share of right final answers its own revision made (SI contribution), per-difficulty accuracy, with 95% intervals (Wilson for single rates, a paired bootstrap for final - first), per task and for seen/unseen/total."
        ),
    )
    add_student_flags(p)
    add_problem_flags(p, n=20, subset="both", held_out=True)
    # Greedy decoding: the token budget and the batch are its only sampling settings.
    add_sampling_flags(p, max_new_tokens=EvalConfig.max_new_tokens, batch_size=EvalConfig.batch_size)
    p.add_argument("--max-turns", type=int, default=EvalConfig.max_turns, metavar="K",
                   help=f"most updates after the first attempt (default {EvalConfig.max_turns}; 0 = first attempt only)")
    p.add_argument("--turns", default=EvalConfig.turns, choices=("single", "whole"),
                   help=f"what each feedback and update is written after: single = the question and the last answer only (TriPosT's "
                        f"test-time re-prompting), whole = the whole transcript (default {EvalConfig.turns})")
    p.add_argument("--no-force-feedback", action="store_true", help="stop when the student ends its text without writing feedback itself")
    add_bootstrap_flag(p, EvalConfig.n_bootstrap)
    p.add_argument("--out", metavar="FILE.json", help="write the metrics JSON here and the transcripts to FILE.transcripts.jsonl beside it; "
                   "until then every generate call is journalled in FILE.journal.jsonl, and the same command resumes a killed evaluation from it")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file (and its transcripts); start over instead of resuming its journal")
    p.add_argument("--json", action="store_true", help="print the metrics JSON instead of a table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    # Everything a user can get wrong is checked before the model loads.
    cfg = EvalConfig(
        max_turns=args.max_turns, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, turns=args.turns,
        force_feedback=not args.no_force_feedback, n_bootstrap=args.bootstrap, seed=args.seed,
        allow_train=args.allow_train, progress=not args.no_progress,
    )
    problems = problems_from_args(args)
    check_student_args(args)
    # An earlier result is not replaced by accident (an evaluation can take hours).
    check_out_file(args.out, "eval.json", overwrite=args.force)
    if args.out and not args.force and transcripts_path(args.out).exists():
        raise TripostError(f"{transcripts_path(args.out)} already exists (the transcripts --out would write); pass --force to overwrite it")
    journal = journal_path(args.out) if args.out else None
    if journal is not None and args.force:
        journal.unlink(missing_ok=True)
    try:
        if journal is not None and not args.force:
            check_journal(journal, eval_fingerprint(cfg, problems))  # the student's part is checked once it is loaded
        student = open_student(args)
        result = evaluate(student, problems, cfg, journal=journal)
    except JournalMismatch as e:  # the library says what differs; the way out is this command's
        raise TripostError(f"{e}; pass --force to start over") from None
    saved = result.save(args.out) if args.out else None
    if journal is not None:
        journal.unlink(missing_ok=True)  # the result is written: nothing left to resume
        if result.generation.get("replayed_calls"):
            print(f"tripost eval: resumed from {journal}: {result.generation['replayed_calls']} generate calls replayed", file=sys.stderr)
    summary = result.summary()
    if saved:
        summary["transcripts"] = str(saved[1])
    if args.json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        print_table(summary)
        if saved:
            print(f"wrote {saved[0]} and {saved[1]}")
    return 0


def _pct(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:5.1f}%"


def _ci(ci: list[float] | None) -> str:
    return "" if ci is None else f" [{100 * ci[0]:.0f}-{100 * ci[1]:.0f}]"


def print_table(summary: dict[str, Any]) -> None:
    m = summary["metrics"]
    rows: list[tuple[str, dict[str, Any]]] = []
    for fam, groups in m["by_task"].items():
        rows += [(f"{fam}/{g}", groups[g]) for g in ("seen", "unseen") if groups[g]]
    rows += [(g, m[g]) for g in ("seen", "unseen", "total") if m[g]]
    print(f"{'group':28s} {'n':>4s}  {'first':>16s}  {'final':>16s}  {'revised':>7s}  {'fixed':>7s}  {'broke':>7s}  {'si share':>8s}")
    for name, g in rows:
        print(
            f"{name:28s} {g['n']:4d}  {_pct(g['first_accuracy'])}{_ci(g['ci']['first_accuracy']):>10s}  "
            f"{_pct(g['final_accuracy'])}{_ci(g['ci']['final_accuracy']):>10s}  {_pct(g['revised_rate']):>7s}  "
            f"{_pct(g['fix_rate']):>7s}  {_pct(g['break_rate']):>7s}  {_pct(g.get('si_contribution')):>8s}"
        )
    # One line of legend: "si share" is not a standard name.
    print("fixed: of wrong first attempts, made right; broke: of right ones, made wrong; "
          "si share: of right final answers, those the student's own revision fixed (TriPosT's SI contribution)")
    total = m["total"]
    print("stop reasons: " + ", ".join(f"{k} {v}" for k, v in total["stop_reasons"].items()))
    gen = summary["generation"]
    if gen.get("tokens_per_s"):
        print(f"generated {gen['tokens']} tokens in {gen['seconds']:.1f} s ({gen['tokens_per_s']:.1f} tokens/s)")
