"""`tripost gap`: the generation-verification gap (Song et al. 2024) of a student
on held-out problems. The measurement itself is tripost/gap.py."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tripost.cli._io import add_held_out_flags, add_student_flags, check_out_file, check_student_args, open_student
from tripost.errors import TripostError


def register(sub: argparse._SubParsersAction) -> None:
    from tripost.gap import FILTERS, VERIFIERS, GapConfig

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
    add_held_out_flags(p, subset="seen", n=16)
    p.add_argument("--samples", type=int, default=d.samples, metavar="N", help=f"samples per problem (default {d.samples})")
    p.add_argument("--verifier", default=d.verifier, choices=VERIFIERS, help=f"(default {d.verifier})")
    p.add_argument("--teacher", metavar="SPEC", help="teacher spec for --verifier teacher (default scripted)")
    p.add_argument("--filter", default=d.filter, choices=FILTERS, help=f"(default {d.filter})")
    p.add_argument("--quantile", type=float, metavar="Q", help=f"quantile filter: share of samples kept per problem, in (0, 1] (default {d.quantile})")
    p.add_argument("--threshold", type=float, metavar="T", help=f"threshold filter: keep scores >= T, in [0, 1] (default {d.threshold})")
    p.add_argument("--temperature", type=float, default=d.temperature, help=f"sampling temperature, > 0 (default {d.temperature})")
    p.add_argument("--top-p", type=float, default=d.top_p, help=f"nucleus sampling mass (default {d.top_p})")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help=f"tokens per sample (default {d.max_new_tokens})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"sequences decoded together (default {d.batch_size})")
    p.add_argument("--bootstrap", type=int, default=d.n_bootstrap, metavar="B", help=f"bootstrap resamples (default {d.n_bootstrap})")
    p.add_argument("--seed", type=int, default=0, help="seed of problems, sampling and bootstrap (default 0)")
    p.add_argument("--out", metavar="FILE.json", help="write the full result (every sample, its score and whether it was kept) here")
    p.add_argument("--json", action="store_true", help="print the result JSON (without sample texts) instead of a table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from tripost.teachers.options import add_teacher_flags

    add_teacher_flags(p)  # for --verifier teacher with an LLM teacher, as collect and teach
    p.set_defaults(handler=cmd_gap)


def config_from_args(args: argparse.Namespace) -> Any:
    from tripost.gap import GapConfig

    if args.quantile is not None and args.filter != "quantile":
        raise TripostError("--quantile applies to --filter quantile only")
    if args.threshold is not None and args.filter != "threshold":
        raise TripostError("--threshold applies to --filter threshold only")
    if args.teacher is not None and args.verifier != "teacher":
        raise TripostError("--teacher applies to --verifier teacher only")
    d = GapConfig()
    return GapConfig(
        samples=args.samples, verifier=args.verifier, filter=args.filter,
        quantile=d.quantile if args.quantile is None else args.quantile,
        threshold=d.threshold if args.threshold is None else args.threshold,
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed,
        batch_size=args.batch_size, teacher=args.teacher or d.teacher, n_bootstrap=args.bootstrap,
        allow_train=args.allow_train, progress=not args.no_progress,
    )


def cmd_gap(args: argparse.Namespace) -> int:
    from tripost.cli.eval_cmd import load_eval_problems
    from tripost.gap import measure_gap

    # Everything a user can get wrong is checked before the model loads.
    cfg = config_from_args(args)
    problems = load_eval_problems(args)
    check_student_args(args)
    check_out_file(args.out, "gap.json")
    teacher = None
    if cfg.verifier == "teacher":
        from tripost.teachers import TeacherOptions, make_teacher

        teacher = make_teacher(cfg.teacher, **TeacherOptions.from_args(args).teacher_kwargs())
    student = open_student(args)
    try:
        result = measure_gap(student, problems, cfg, teacher=teacher)
    finally:
        close = getattr(teacher, "close", None)
        if callable(close):
            close()
    saved = result.save(args.out) if args.out else None
    if args.json:
        out = result.to_dict(samples=False)
        if saved:
            out["file"] = str(saved)
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    else:
        print_table(result.to_dict(samples=False))
        if saved:
            print(f"wrote {saved}")
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
