"""`tripost collect`: training problems -> interaction log, by any data source.

The collection settings (flags below) are the run config's `[collect]`
section (tripost/sources/settings.py): same names, defaults and checks; the
source is looked up by name (tripost.sources), as `tripost run` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tripost.cli._io import (add_problem_flags, add_student_flags, add_teacher_flag, check_out_dir, check_student_args,
                             open_student, problems_from_args, removed_flag)
from tripost.config import config_hash, write_config
from tripost.errors import TripostError
from tripost.fileio import FolderLock
from tripost.settings import add_flags, flag_of, from_args
from tripost.sources import make_source
from tripost.sources.collect import collect_to
from tripost.sources.settings import CollectSettings, STRATEGIES
from tripost.teachers import TeacherOptions, add_teacher_flags, make_teacher
from tripost.teachers.batch import BATCH_LOG_FILE
from tripost.teachers.usage import format_cost

# What config.json leaves out of the parsed flags: the handler, the output
# form, the problem group's own bookkeeping (collect's split is always train)
# and the flags collect no longer has.
NOT_CONFIG = ("handler", "json", "split", "allow_train", "problems_held_out", "removed_batch_size")

# Settings that only one source reads: given with another source they would
# silently do nothing, so that is an error naming them.
ONLY_FOR = {
    "guided": ("guided_strategy", "guided_min_correct", "guided_rounds", "guided_check", "guided_budget", "guided_teacher_edits"),
    "sharpen": ("sharpen_reward",),
    "self_verified": ("verify_verifier", "verify_mode", "verify_filter", "verify_quantile", "verify_threshold"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "collect",
        help="collect training data with the student (and a teacher): teacher edits, rejection, sharpen or guided",
        description=(
            "The student samples attempts for training problems and a data source turns them into log records: "
            "teacher (the default: the teacher gives feedback and improves wrong attempts up to --max-edits times), "
            "rejection (the student's own correct samples), sharpen (its best of --samples by its own likelihood, "
            "SFT-sharpening; best-of-N as `tripost sharpen eval` measures it: --samples 8 --reward logprob "
            "--temperature 0.7 --top-p 0.95 --max-new-tokens 256), guided (guided rounds for the problems it rarely "
            "solves), self_verified (its samples kept by its own verifier) or demo (the teacher's own corrected "
            "attempts). Records are appended to RUN/log.jsonl; re-running the same command resumes where it stopped. "
            "The collection settings are the run config's [collect] keys; --samples, --temperature, --top-p and "
            "--max-new-tokens are the same flags in sample, gap and sharpen eval. --problems-per-call "
            "(collect.batch_size) is how many problems the sampler gets at a time; --batch-size, the sequences "
            "decoded together in the verbs that have it, is not a collect flag."
        ),
    )
    add_student_flags(p)
    add_problem_flags(p, n=32, subset="seen")  # training problems: the train split only
    add_teacher_flag(p, use="for the sources that ask one (teacher, demo; guided's interactive strategy or --teacher-edits)")
    p.add_argument("--iteration", type=int, default=0, help="iteration number recorded in the log (default 0)")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder (log.jsonl, collect.json, config.json)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    g = p.add_argument_group("collection settings (in `tripost run`: collect.KEY=VALUE)")
    add_flags(g, CollectSettings, unset=True)
    removed_flag(g, "--batch-size", "is not a collect flag: problems per sampler call is --problems-per-call "
                 "(collect.batch_size); --batch-size is the sequences decoded together in sample, eval, gap and sharpen eval")
    g.add_argument("--guided", metavar="STRATEGY", choices=STRATEGIES,
                   help=f"short for --source guided --guided-strategy STRATEGY: {', '.join(STRATEGIES)} (docs/guided.md)")
    add_teacher_flags(p)  # --teacher-timeout, --teacher-concurrency, ...: as teach, and teacher.* in run
    p.set_defaults(handler=cmd_collect)


def collect_settings(args: argparse.Namespace) -> CollectSettings:
    """The settings the flags give, checked; errors name the flags."""
    if args.guided:
        if args.source not in (None, "guided"):
            raise TripostError(f"--guided goes with --source guided, not --source {args.source}")
        if args.guided_strategy not in (None, args.guided):
            raise TripostError("give the strategy once: --guided STRATEGY or --guided-strategy STRATEGY")
        args.source, args.guided_strategy = "guided", args.guided
    settings = from_args(CollectSettings, args)
    for source, keys in ONLY_FOR.items():
        given = [flag_of(CollectSettings, k) for k in keys if getattr(args, k) is not None]
        if given and settings.source != source:
            raise TripostError(f"{', '.join(given)} go{'es' if len(given) == 1 else ''} with --source {source}"
                               f"{' (or --guided STRATEGY)' if source == 'guided' else ''}")
    return settings.check(lambda key: flag_of(CollectSettings, key))


def cmd_collect(args: argparse.Namespace) -> int:
    # Everything a user can get wrong is checked before the model loads and
    # before config.json is written.
    check_out_dir(args.out)
    check_student_args(args)
    settings = collect_settings(args)
    # The train split only: --data rows of another split (or subset) are never trained on.
    problems = problems_from_args(args)
    options = TeacherOptions.from_args(args)
    source = make_source(settings, teacher_concurrency=options.concurrency)

    # With --teacher-batch, the batches sent are recorded in the run folder, so a rerun resumes them.
    teacher = make_teacher(args.teacher, **options.teacher_kwargs(), batch_log=Path(args.out) / BATCH_LOG_FILE) if source.needs_teacher else None
    resolved = {k: v for k, v in vars(args).items() if k not in NOT_CONFIG}
    resolved.update(settings.to_dict())  # the settings as used, defaults filled in
    run = Path(args.out)
    # One writer per --out: a second collect there is refused before it reads
    # or writes the log; the lock is released when the collection ends, or
    # goes with this process (tripost.fileio.FolderLock).
    with FolderLock(run, "tripost collect"):
        return _collect(args, run, settings, source, teacher, problems, resolved)


def _collect(args: argparse.Namespace, run: Path, settings: CollectSettings, source: Any, teacher: Any, problems: list[Any],
             resolved: dict[str, Any]) -> int:
    """`cmd_collect` once its checks passed and the folder is locked."""
    result = collect_to(source, settings, problems, run / "log.jsonl", run / "collect.json", open_student=lambda: open_student(args),
                        teacher=teacher, iteration=args.iteration, seed=args.seed, config_hash=config_hash(resolved),
                        on_start=lambda: write_config(resolved, run))
    summary = result.to_dict()
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    elif "coverage_final" in summary:
        print(f"wrote {result.records_written} records to {result.log_path} ({result.records_skipped} already there); "
              f"{summary['rounds']} round(s), {summary['generation_calls']} samples; coverage {summary['coverage_round0']:.0%} after round 0, "
              f"{summary['coverage_final']:.0%} at the end; correct trajectories {summary['correct_final']} "
              f"({summary['correct_round0']} from round 0); teacher calls {result.teacher_calls}")
    else:
        print(f"wrote {result.records_written} trajectories to {result.log_path} ({result.records_skipped} already there); "
              f"usable {result.usable}: {result.by_kind}; teacher calls {result.teacher_calls}"
              + (f" ({result.batched_calls} answered in provider batches, at half price)" if result.batched_calls else "")
              + f", cost {format_cost(result.cost_usd, result.unpriced)}")
    extra = {k: summary[k] for k in ("kept", "dropped", "kept_precision", "skipped", "chosen_correct") if summary.get(k) not in (None, {}, [])}
    if extra and not args.json:  # what a source adds to the common summary (self_verified, demo, sharpen: picks in fact right)
        print("; ".join(f"{k.replace('_', ' ')} {v:.1%}" if k == "kept_precision" else f"{k.replace('_', ' ')} {v}" for k, v in extra.items()))
    note = sys.stderr if args.json else sys.stdout  # stdout stays pure JSON under --json
    if result.unavailable:
        print(f"note: {result.unavailable} trajectories were left out: the teacher did not answer; rerun the same command to do them", file=note)
    if result.stopped_early:
        print(f"note: {result.stopped_early}", file=note)
    return 0
