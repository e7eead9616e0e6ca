"""`tripost sharpen eval`: best-of-N with the student's own likelihood
(Huang et al. 2024), measured on held-out problems. The estimators and
rewards are documented in tripost/sharpen.py. SFT-sharpening data is
`tripost collect --source sharpen` (what `tripost sharpen data` wrote before
issue 30: `sharpen data` now says so and stops)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tripost.cli._io import (add_bootstrap_flag, add_problem_flags, add_sampling_flags, add_student_flags, check_out_file, check_student_args,
                             open_student, problems_from_args)
from tripost.errors import TripostError
from tripost.sharpen import (DEFAULT_BOOTSTRAP, DEFAULT_MAX_SUBSETS, DEFAULT_NS, REWARDS, SharpenConfig, accuracy_vs_n, parse_ns,
                             parse_rewards)

# What `tripost sharpen data` did, as the command that does it now: the
# source `sharpen` of `tripost collect`, at best-of-N's defaults
# (SHARPEN_DEFAULTS in tripost/sources/settings.py) instead of the
# collection's. The log is RUN/log.jsonl.
_D = SharpenConfig()
SHARPEN_DATA_INSTEAD = (f"tripost collect --source sharpen --task FAMILY --out RUN --samples {_D.samples} --reward {_D.reward} "
                        f"--temperature {_D.temperature} --top-p {_D.top_p} --max-new-tokens {_D.max_new_tokens}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sharpen",
        help="best-of-N with the student's own likelihood: accuracy against N on held-out problems",
        description=(
            "Sharpening (Huang et al. 2024): among N sampled attempts, pick the one the student itself finds most "
            "likely (logprob: sum of token log-probs; mean_logprob: per-token mean; majority: most common answer). "
            "`eval` measures best-of-N accuracy against N on held-out problems. The picks on training problems, as "
            "teacher-free training data, are `tripost collect --source sharpen` (docs/sharpen.md)."
        ),
    )
    ssub = p.add_subparsers(dest="sharpen_verb", metavar="ACTION")
    ssub.required = True

    d = SharpenConfig()  # best-of-N's defaults, declared once (tripost/sources/settings.py: SHARPEN_DEFAULTS)
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
    add_student_flags(e)
    add_problem_flags(e, n=20, subset="seen", held_out=True)
    # --ns sets how many attempts are sampled (max of them): no --samples here.
    add_sampling_flags(e, temperature=d.temperature, top_p=d.top_p, max_new_tokens=d.max_new_tokens, batch_size=d.batch_size)
    e.add_argument("--score-batch-size", type=int, default=d.score_batch_size, metavar="N",
                   help=f"sequences the student scores together (default {d.score_batch_size})")
    ns = ",".join(str(n) for n in DEFAULT_NS)
    e.add_argument("--ns", default=ns, metavar="N,N,...", help=f"best-of-N sizes; max(N) attempts are sampled per problem (default {ns})")
    e.add_argument("--reward", default="all", choices=(*REWARDS, "all"), help="self-reward (default all: they share the samples)")
    e.add_argument("--max-subsets", type=int, default=DEFAULT_MAX_SUBSETS, metavar="S",
                   help=f"majority: enumerate all subsets up to S of them, else average S random ones (default {DEFAULT_MAX_SUBSETS})")
    add_bootstrap_flag(e, DEFAULT_BOOTSTRAP)
    e.add_argument("--out", metavar="FILE.json", help="write the JSON here and every sample to FILE.samples.jsonl beside it")
    e.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    e.set_defaults(handler=cmd_eval)

    # Removed (issue 30): it repeated `tripost collect --source sharpen` with
    # other defaults. Whatever follows it, the answer is one line naming that.
    gone = ssub.add_parser("data", help="removed: use `tripost collect --source sharpen` (see `tripost sharpen data --help`)",
                           description=f"Removed: SFT-sharpening data is `tripost collect --source sharpen`. With the old defaults: "
                                       f"{SHARPEN_DATA_INSTEAD} (the log is RUN/log.jsonl).")
    gone.set_defaults(handler=cmd_data_removed)
    parse = gone.parse_known_args

    def parse_known_args(args: Any = None, namespace: Any = None) -> Any:
        """Its old flags, whatever they are, are not a usage error: the handler's line says what to run instead."""
        return parse(["--help"] if any(a in ("-h", "--help") for a in args or ()) else [], namespace)

    gone.parse_known_args = parse_known_args  # type: ignore[method-assign]


def cmd_data_removed(args: argparse.Namespace) -> int:
    raise TripostError(f"`tripost sharpen data` is gone: SFT-sharpening data is `tripost collect --source sharpen` "
                       f"(the log is RUN/log.jsonl); with the old defaults: {SHARPEN_DATA_INSTEAD}")


def cmd_eval(args: argparse.Namespace) -> int:
    # Everything a user can get wrong is checked before the model loads.
    ns = parse_ns(args.ns)
    rewards = parse_rewards(args.reward)
    if args.bootstrap < 1:
        raise TripostError("--bootstrap must be at least 1")
    if args.max_subsets < 1:
        raise TripostError("--max-subsets must be at least 1")
    config = SharpenConfig(samples=max(ns), reward=rewards[0], temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                           batch_size=args.batch_size, score_batch_size=args.score_batch_size)  # checks the sampling settings for max(ns) samples
    problems = problems_from_args(args)  # the train split only with --allow-train
    check_student_args(args)
    check_out_file(args.out, "sharpen.json")

    student = open_student(args)
    result = accuracy_vs_n(
        student, problems, ns, rewards, config, seed=args.seed, max_subsets=args.max_subsets, n_boot=args.bootstrap,
        allow_train=args.allow_train, progress=not args.json,
    )
    summary = result.summary()
    if args.out:
        out, samples = result.save(args.out)
        summary["samples_file"] = samples.name
    if args.json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        print_table(summary)
        if args.out:
            print(f"wrote {out} and {samples}")
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
    print(f"{summary['student'].get('student', '?')} on {', '.join(probs['families'])} "
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
