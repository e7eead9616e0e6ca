"""`tripost sharpen eval|data`: best-of-N with the student's own likelihood
(Huang et al. 2024), measured on held-out problems, or written as teacher-free
training data. The estimators and rewards are documented in tripost/sharpen.py."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tripost.cli._io import add_student_flags, check_out_file, check_student_args, open_student
from tripost.errors import TripostError
from tripost.log import read_log
from tripost.sharpen import REWARDS, SharpenConfig, accuracy_vs_n, parse_ns, parse_rewards
from tripost.sources.sharpen import write_sharpen_log
from tripost.tasks import FAMILIES, PRESETS, SPLITS, SUBSETS, Problem, get_task, select_problems


def _common(p: argparse.ArgumentParser) -> None:
    d = SharpenConfig  # the defaults, declared once (tripost/sources/settings.py: SHARPEN_DEFAULTS)
    add_student_flags(p)
    p.add_argument("--task", required=True, metavar="FAMILY", help=f"one of: {', '.join(FAMILIES)}")
    p.add_argument("--preset", default="small", choices=PRESETS, help="difficulty preset (default: small)")
    p.add_argument("--temperature", type=float, default=d.temperature, help=f"sampling temperature (default: {d.temperature})")
    p.add_argument("--top-p", type=float, default=d.top_p, help=f"nucleus sampling mass (default: {d.top_p})")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help=f"token budget of an attempt (default: {d.max_new_tokens})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"sequences sampled together (default: {d.batch_size})")
    p.add_argument("--score-batch-size", type=int, default=d.score_batch_size, help=f"sequences scored together (default: {d.score_batch_size})")
    p.add_argument("--seed", type=int, default=0, help="seed of problem sampling, decoding and the estimators (default: 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sharpen",
        help="best-of-N with the student's own likelihood: accuracy vs N, or teacher-free training data",
        description=(
            "Sharpening (Huang et al. 2024): among N sampled attempts, pick the one the student itself finds most "
            "likely (logprob: sum of token log-probs; mean_logprob: per-token mean; majority: most common answer). "
            "`eval` measures best-of-N accuracy against N on held-out problems; `data` writes the picks on training "
            "problems as an interaction log (source sharpen) that `tripost buffer` reads like any other."
        ),
    )
    ssub = p.add_subparsers(dest="sharpen_verb", metavar="ACTION")
    ssub.required = True

    e = ssub.add_parser(
        "eval",
        help="best-of-N accuracy against N per reward, on held-out problems",
        description=(
            "Sample max(--ns) attempts per problem once, score each once, and report for every N the expected "
            "accuracy of best-of-N over random size-N subsets of them (exact for the likelihood rewards; exact or "
            "Monte Carlo for majority), with 95% bootstrap intervals over problems; also the oracle (any of N "
            "correct, pass@N) and the mean single-sample accuracy."
        ),
    )
    _common(e)
    e.add_argument("--split", default="test", choices=SPLITS, help="problem split (default test; train needs --allow-train)")
    e.add_argument("--allow-train", action="store_true", help="allow the train split (not a held-out measurement)")
    e.add_argument("--subset", default="seen", choices=(*SUBSETS, "both"), help="difficulty subset (default seen)")
    e.add_argument("--n", type=int, default=20, metavar="PROBLEMS", help="problems per subset (default 20)")
    e.add_argument("--ns", default="1,2,4,8,16", metavar="N,N,...", help="best-of-N sizes (default 1,2,4,8,16)")
    e.add_argument("--reward", default="all", choices=(*REWARDS, "all"), help="self-reward (default all: they share the samples)")
    e.add_argument("--max-subsets", type=int, default=2000, metavar="S", help="majority: enumerate all subsets up to S of them, else average S random ones (default 2000)")
    e.add_argument("--bootstrap", type=int, default=1000, metavar="B", help="bootstrap resamples (default 1000)")
    e.add_argument("--out", metavar="FILE.json", help="write the JSON here and every sample to FILE.samples.jsonl beside it")
    e.set_defaults(handler=cmd_eval)

    d = ssub.add_parser(
        "data",
        help="SFT-sharpening data: the student's best-of-N picks on training problems, as a log",
        description=(
            "For each training problem sample --samples attempts and keep the one --reward picks, whether or not it "
            "is right (sharpening does not check answers); append it to an interaction log as a `direct` record "
            "with source `sharpen` and no feedback (the buffer trains it as a plain attempt: no unchecked "
            "\"also correct\" verdict). Re-running resumes. Build a buffer with `tripost buffer LOG --out DIR` "
            "(add --no-gold --ratio 0:1:0 for sharpening data alone)."
        ),
    )
    _common(d)
    d.add_argument("--subset", default="seen", choices=SUBSETS, help="difficulty subset (default seen)")
    d.add_argument("--n", type=int, default=32, metavar="PROBLEMS", help="training problems (default 32)")
    d.add_argument("--samples", type=int, default=SharpenConfig.samples, metavar="K",
                   help=f"attempts per problem to choose from (default {SharpenConfig.samples})")
    d.add_argument("--reward", default=SharpenConfig.reward, choices=REWARDS, help=f"self-reward (default {SharpenConfig.reward})")
    d.add_argument("--iteration", type=int, default=0, help="iteration number recorded in the log (default 0)")
    d.add_argument("--out", required=True, metavar="LOG.jsonl", help="interaction log to append to")
    d.set_defaults(handler=cmd_data)


def _config(args: argparse.Namespace, samples: int, reward: str) -> Any:
    return SharpenConfig(
        samples=samples, reward=reward, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size, score_batch_size=args.score_batch_size,
    )


def _problems(args: argparse.Namespace, split: str, subsets: tuple[str, ...]) -> list[Problem]:
    if args.n < 1:
        raise TripostError("--n must be at least 1")
    task = get_task(args.task)
    if not any(task.levels(args.preset, s) for s in subsets):
        raise TripostError(f"the {args.task} family has no problem generator for preset {args.preset}")
    return select_problems([args.task], split=split, subsets=subsets, n=args.n, preset=args.preset, seed=args.seed)


def cmd_eval(args: argparse.Namespace) -> int:
    # Everything a user can get wrong is checked before the model loads.
    ns = parse_ns(args.ns)
    rewards = parse_rewards(args.reward)
    if args.split == "train" and not args.allow_train:
        raise TripostError("refusing to evaluate on the train split: evaluation is on held-out problems (use --split test or val, or pass --allow-train)")
    if args.bootstrap < 1:
        raise TripostError("--bootstrap must be at least 1")
    if args.max_subsets < 1:
        raise TripostError("--max-subsets must be at least 1")
    config = _config(args, max(ns), rewards[0])  # checks the sampling settings for max(ns) samples
    problems = _problems(args, args.split, ("seen", "unseen") if args.subset == "both" else (args.subset,))
    check_student_args(args)
    check_out_file(args.out, "sharpen.json")
    out = Path(args.out) if args.out else None

    student = open_student(args)
    result = accuracy_vs_n(
        student, problems, ns, rewards, config, seed=args.seed, max_subsets=args.max_subsets, n_boot=args.bootstrap,
        allow_train=args.allow_train, progress=not args.json,
    )
    summary = result.summary()
    summary["task"] = args.task
    if out is not None:
        samples = out.with_name((out.name[:-5] if out.name.endswith(".json") else out.name) + ".samples.jsonl")
        out.parent.mkdir(parents=True, exist_ok=True)
        samples.write_text(result.samples_jsonl(), encoding="utf-8")
        summary["samples_file"] = samples.name
        out.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        print_table(summary)
        if out is not None:
            print(f"wrote {out} and {summary['samples_file']}")
    return 0


def _cell(c: dict[str, Any]) -> str:
    ci = c.get("ci")
    band = f"[{100 * ci[0]:.0f}-{100 * ci[1]:.0f}]" if ci else ""
    mark = "" if c.get("exact", True) else "~"
    return f"{mark}{100 * c['accuracy']:.1f}% {band}"


def print_table(summary: dict[str, Any]) -> None:
    table = summary["table"]
    ns = summary["ns"]
    probs = summary["problems"]
    m = summary["samples_per_problem"]
    print(f"{summary['student'].get('student', '?')} on {summary.get('task', ', '.join(probs['families']))} "
          f"({'/'.join(probs['splits'])}, {'+'.join(probs['subsets'])}): {probs['n']} problems x {m} samples, "
          f"temperature {summary['config']['temperature']}, top-p {summary['config']['top_p']}")
    single = table["single"][0]
    print(f"single sample (mean over all {m}): {_cell({**single, 'exact': True})}")
    width = max(16, *(len(_cell(c)) + 2 for cells in table.values() for c in cells))
    head = "".join(f"{'N=' + str(n):>{width}s}" for n in ns)
    print(f"{'reward':16s}{head}")
    for row in [*summary["rewards"], "oracle"]:
        label = "oracle (any)" if row == "oracle" else row
        print(f"{label:16s}" + "".join(f"{_cell(c):>{width}s}" for c in table[row]))
    last = {r: table[r][-1] for r in summary["rewards"]}
    gains = ", ".join(
        f"{r} {100 * c['gain']:+.1f} pts" + (f" [{100 * c['gain_ci'][0]:+.0f}, {100 * c['gain_ci'][1]:+.0f}]" if c.get("gain_ci") else "")
        for r, c in last.items()
    )
    print(f"gain over a single sample at N={ns[-1]}: {gains}")
    print("accuracy: expected best-of-N over random size-N subsets of the samples; [95% bootstrap interval over problems]"
          + ("; ~ = Monte Carlo over subsets" if any(not c["exact"] for cells in table.values() for c in cells) else ""))
    gen = summary["generation"]
    print(f"sampled {gen['sequences']} attempts ({gen['tokens']} tokens, {gen['sample_seconds']:.0f} s, {gen['tokens_per_s']:.1f} tokens/s); "
          f"scored them in {gen['score_seconds']:.0f} s")


def cmd_data(args: argparse.Namespace) -> int:

    if args.samples < 1:
        raise TripostError("--samples must be at least 1")
    if args.iteration < 0:
        raise TripostError("--iteration must be >= 0")
    config = _config(args, args.samples, args.reward)
    problems = _problems(args, "train", (args.subset,))
    check_student_args(args)
    check_out_file(args.out, "sharpen.jsonl", "log file")
    out = Path(args.out)
    if out.exists():
        for _ in read_log(out):  # a log we cannot resume is an error now, not after the model loads
            pass

    student = open_student(args)
    result = write_sharpen_log(problems, student, out, config, iteration=args.iteration, seed=args.seed, progress=not args.json)
    summary = {**result.to_dict(), "student": student.describe(), "config": config.to_dict(), "task": args.task, "problems": len(problems)}
    if args.json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        w = result.records_written
        print(f"wrote {w} sharpened record(s) to {out} ({result.records_skipped} already there); best of {args.samples} by {args.reward}")
        if w:
            print(f"picks that are in fact correct: {result.chosen_correct}/{w} = {result.chosen_correct / w:.1%} "
                  f"(problems with any correct sample: {result.any_correct}/{w}); empty picks: {result.failed}")
        print(f"next: tripost buffer {out} --out BUFFER_DIR   (sharpening data alone: add --no-gold --ratio 0:1:0)")
    return 0
