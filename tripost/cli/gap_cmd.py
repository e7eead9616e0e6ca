"""`tripost gap`: the generation-verification gap (Song et al. 2024) of a student
on held-out problems. The measurement itself is tripost/gap.py."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tripost.cli._io import (add_bootstrap_flag, add_problem_flags, add_sampling_flags, add_student_flags, add_teacher_flag,
                             check_out_file, check_student_args, open_student, problems_from_args)
from tripost.errors import TripostError
from tripost.gap import FILTERS, GapConfig, VERIFIERS, gap_for_run
from tripost.teachers import TeacherOptions, make_teacher
from tripost.teachers.options import add_teacher_flags


def register(sub: argparse._SubParsersAction) -> None:
    d = GapConfig()
    p = sub.add_parser(
        "gap",
        help="measure the generation-verification gap of a student",
        description=(
            "Sample N attempts per held-out problem, score each with a verifier (mc: the student's own "
            "p(Correct)/(p(Correct)+p(Incorrect)) after its answer; cot: the same after a short verification it "
            "writes first; self: its own closing feedback; teacher: the teacher's feedback), keep the best by a filter, and report gap = mean over problems of "
            "(accuracy of kept samples - accuracy of all samples) and the relative gap (each term divided by "
            "1 - accuracy of all samples), both over the problems where both are defined (something kept, not every "
            "sample right; the others are counted), with 95% bootstrap intervals over problems (Song et al. 2024)."
        ),
    )
    add_student_flags(p)
    add_problem_flags(p, n=16, subset="seen", held_out=True)
    # GapConfig's sampling: distinct samples for the verifier to sort (temperature > 0).
    add_sampling_flags(p, samples_per_problem=d.samples, temperature=d.temperature, top_p=d.top_p, max_new_tokens=d.max_new_tokens,
                       batch_size=d.batch_size)
    p.add_argument("--verifier", default=d.verifier, choices=VERIFIERS, help=f"(default {d.verifier})")
    add_teacher_flag(p, unset=True, use="for --verifier teacher")
    p.add_argument("--filter", default=d.filter, choices=FILTERS, help=f"(default {d.filter})")
    p.add_argument("--quantile", type=float, metavar="Q", help=f"quantile filter: share of samples kept per problem, in (0, 1] (default {d.quantile})")
    p.add_argument("--threshold", type=float, metavar="T", help=f"threshold filter: keep scores >= T, in [0, 1] (default {d.threshold})")
    add_bootstrap_flag(p, d.n_bootstrap)
    p.add_argument("--out", metavar="FILE.json", help="write the full result (every sample, its score and whether it was kept) here")
    p.add_argument("--json", action="store_true", help="print the result JSON (without sample texts) instead of a table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    add_teacher_flags(p)  # for --verifier teacher with an LLM teacher, as collect and teach
    p.set_defaults(handler=cmd_gap)


def config_from_args(args: argparse.Namespace) -> Any:
    if args.quantile is not None and args.filter != "quantile":
        raise TripostError("--quantile applies to --filter quantile only")
    if args.threshold is not None and args.filter != "threshold":
        raise TripostError("--threshold applies to --filter threshold only")
    if args.teacher is not None and args.verifier != "teacher":
        raise TripostError("--teacher applies to --verifier teacher only")
    d = GapConfig()
    return GapConfig(
        samples=args.samples_per_problem, verifier=args.verifier, filter=args.filter,
        quantile=d.quantile if args.quantile is None else args.quantile,
        threshold=d.threshold if args.threshold is None else args.threshold,
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed,
        batch_size=args.batch_size, teacher=args.teacher or d.teacher, n_bootstrap=args.bootstrap,
        allow_train=args.allow_train, progress=not args.no_progress,
    )


def cmd_gap(args: argparse.Namespace) -> int:
    # Everything a user can get wrong is checked before the model loads.
    cfg = config_from_args(args)
    problems = problems_from_args(args)
    check_student_args(args)
    check_out_file(args.out, "gap.json")
    teacher = None
    if cfg.verifier == "teacher":
        teacher = make_teacher(cfg.teacher, **TeacherOptions.from_args(args).teacher_kwargs())
    student = open_student(args)
    try:
        # The function the run's gap stage calls (tripost.loop), with each problem's terms for the table.
        summary = gap_for_run(student, problems, cfg, teacher=teacher, out=args.out or None, per_problem=True)
    finally:
        close = getattr(teacher, "close", None)
        if callable(close):
            close()
    if args.json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        print_table(summary)
        if "file" in summary:
            print(f"wrote {summary['file']}")
    return 0


def _pct(x: float | None) -> str:
    return "     -" if x is None else f"{100 * x:5.1f}%"


def _pp(x: float | None) -> str:
    return "      -" if x is None else f"{100 * x:+5.1f}pp"


def _spct(x: float | None) -> str:
    return "     -" if x is None else f"{100 * x:+5.1f}%"


def _ci(ci: list[float] | None, signed: bool = False) -> str:
    if ci is None:
        return ""
    fmt = "{:+.1f}" if signed else "{:.1f}"
    return f"[{fmt.format(100 * ci[0])}, {fmt.format(100 * ci[1])}]"


def print_table(summary: dict[str, Any]) -> None:
    m, c, s = summary["metrics"], summary["config"], summary["student"]
    rule = f"keep top {c['quantile']:.0%} per problem" if c["filter"] == "quantile" else f"keep score >= {c['threshold']}"
    families = sorted({p["family"] for p in summary["problems"]})
    splits = sorted({f"{p['split']}/{p['subset']}" for p in summary["problems"]})
    print(
        f"generation-verification gap: {s.get('student')} ({s.get('precision')}"
        + (f", adapter {s['adapter']}" if s.get("adapter") else "")
        + f"), {','.join(families)} {','.join(splits)}, {m['problems']} problems x {c['samples']} samples"
    )
    verifier = c["verifier"] + (f" ({summary['teacher']})" if summary.get("teacher") else "")
    print(f"verifier {verifier}, filter {c['filter']} ({rule}); temperature {c['temperature']}, {c['max_new_tokens']} new tokens")
    print(f"{'':24s} {'value':>8s}  {'95% CI':>16s}  over")
    rows = [
        ("accuracy, all samples", _pct(m["acc_all"]["mean"]), _ci(m["acc_all"]["ci"]), m["acc_all"]["n"]),
        ("accuracy, kept samples", _pct(m["acc_kept"]["mean"]), _ci(m["acc_kept"]["ci"]), m["acc_kept"]["n"]),
        ("gap", _pp(m["gap"]["mean"]), _ci(m["gap"]["ci"], True), m["gap"]["n"]),
        ("relative gap", _spct(m["relative_gap"]["mean"]), _ci(m["relative_gap"]["ci"], True), m["relative_gap"]["n"]),
    ]
    for name, value, ci, n in rows:
        print(f"{name:24s} {value:>8s}  {ci:>16s}  {n} problems")
    print(f"{'relative gap, pooled':24s} {_spct(m['relative_gap_pooled']):>8s}  {'':>16s}  {m['gap']['n']} problems (mean gap / mean headroom)")
    ex = m["excluded"]
    print(f"kept {m['kept_samples']}/{m['samples']} samples ({m['kept_fraction']:.1%})")
    print(
        f"problems left out of gap and relative gap: {ex['n']} of {m['problems']} ({ex['none_kept']['n']} with nothing kept, "
        f"{ex['all_right']['n']} with every sample right); {m['all_wrong']['n']} with every sample wrong (terms 0, in both unless nothing kept)"
    )
    v = m["verifier"]

    def f(x: float | None, pct: bool = True) -> str:
        return "-" if x is None else (f"{x:.1%}" if pct else f"{x:.3f}")

    print(
        f"verifier vs correctness over {v['samples']} samples: AUROC {f(v['auroc'], False)}, precision {f(v['precision'])}, "
        f"recall {f(v['recall'])}, base rate {f(v['base_rate'])}; mean score right {f(v['mean_score_correct'], False)}, "
        f"wrong {f(v['mean_score_wrong'], False)}"
    )
    sec = summary.get("seconds") or {}
    if sec:
        print(f"time: sampling {sec.get('sample', 0):.1f} s, verifying {sec.get('verify', 0):.1f} s")
