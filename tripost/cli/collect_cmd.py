"""`tripost collect`: student attempts + teacher edits -> interaction log."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tripost.cli._io import check_out_dir, check_student_args
from tripost.collect import CollectConfig, collect, student_sampler
from tripost.config import config_hash, write_config
from tripost.errors import TripostError
from tripost.guided import CHECKS, STRATEGIES, GuidedConfig, guided_collect, guided_student_sampler
from tripost.log import check_resumable
from tripost.tasks import FAMILIES, PRESETS, SUBSETS, get_task, sample_problems
from tripost.tasks.external import load_problems
from tripost.teachers import SPECS, TeacherOptions, add_teacher_flags, make_teacher
from tripost.teachers.usage import format_cost


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "collect",
        help="collect self-correction trajectories (student attempts, teacher edits)",
        description=(
            "The student samples attempts for training problems; the teacher gives feedback and improves wrong "
            "attempts up to --max-edits times. Finished trajectories are appended to RUN/log.jsonl; re-running the "
            "same command resumes where it stopped."
        ),
    )
    p.add_argument("--student", default="smollm2-135m", metavar="SPEC", help="smollm2-135m (default), hf:PATH or gguf:PATH")
    p.add_argument("--adapter", metavar="DIR", help="a PEFT adapter folder for the student")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "nf4"), help="student weights precision (default auto: bf16 where the device computes it fast, else fp32)")
    p.add_argument("--teacher", default="scripted", metavar="SPEC", help=f"teacher spec (default scripted): {', '.join(SPECS)}")
    p.add_argument("--task", required=True, metavar="FAMILY", help=f"one of: {', '.join(FAMILIES)}")
    p.add_argument("--data", metavar="FILE.jsonl", help="external problems instead of generated ones")
    p.add_argument("--preset", default="small", choices=PRESETS)
    p.add_argument("--subset", default="seen", choices=SUBSETS)
    p.add_argument("--n", type=int, default=32, help="training problems (default 32)")
    p.add_argument("--samples", type=int, default=None,
                   help=f"attempts per problem (default 1; with --guided: samples per round, default {GuidedConfig.samples_per_round})")
    p.add_argument("--max-edits", type=int, default=5, help="teacher improvements per trajectory (default 5)")
    p.add_argument("--passes", type=int, default=1, help="passes over the problems (default 1)")
    p.add_argument("--target-usable", type=int, default=None, help="stop once this many usable trajectories exist")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=CollectConfig.batch_size, help=f"problems per student batch (default {CollectConfig.batch_size})")
    p.add_argument("--iteration", type=int, default=0, help="iteration number recorded in the log")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="RUN", help="run folder (log.jsonl, collect.json, config.json)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_teacher_flags(p)  # --teacher-timeout, --teacher-concurrency, ...: as teach, and teacher.* in run
    g = p.add_argument_group("guided sampling (Guided Self-Improvement; docs/guided.md)")
    g.add_argument("--guided", metavar="STRATEGY", choices=STRATEGIES,
                   help=f"plain round, then guided rounds for problems below --min-correct: {', '.join(STRATEGIES)}")
    g.add_argument("--min-correct", type=int, default=None,
                   help=f"correct samples a problem needs to leave the guided rounds, at most --samples (default {GuidedConfig.min_correct})")
    g.add_argument("--guided-rounds", type=int, default=None, help=f"guided rounds after the plain one (default {GuidedConfig.max_rounds})")
    g.add_argument("--budget", type=int, default=None, help="most sampled sequences in all, round 0 included")
    g.add_argument("--guided-check", choices=CHECKS, default=None,
                   help="answer (default): the final answer decides; steps: also no wrong step (families with a step checker)")
    g.add_argument("--teacher-edits", action="store_true", help="the plain round's wrong samples also get TriPosT's teacher edits")
    p.set_defaults(handler=cmd_collect)


def cmd_collect(args: argparse.Namespace) -> int:
    from tripost.student import SamplingParams, load_student

    # Everything a user can get wrong is checked before the model loads and
    # before config.json is written.
    if args.n < 1:
        raise TripostError("--n must be at least 1")
    check_out_dir(args.out)
    check_student_args(args)
    if not args.guided and (any(v is not None for v in (args.min_correct, args.guided_rounds, args.budget, args.guided_check)) or args.teacher_edits):
        raise TripostError("--min-correct, --guided-rounds, --budget, --guided-check and --teacher-edits go with --guided STRATEGY")
    if args.guided:
        n = GuidedConfig.samples_per_round if args.samples is None else args.samples
        k = GuidedConfig.min_correct if args.min_correct is None else args.min_correct
        if 1 <= n < k:
            # GSI guides only the tail (tripost.guided): the plain round must be able to lift a problem to --min-correct.
            raise TripostError(f"--samples {n} is below --min-correct {k}{' (its default)' if args.min_correct is None else ''}: no problem could "
                               "reach it in the plain round, so every problem would be guided; give --min-correct at most --samples")
    task = get_task(args.task)
    if args.data:
        problems = load_problems(args.data, args.task, split="train")[: args.n]
    else:
        problems = sample_problems(task, split="train", subset=args.subset, preset=args.preset, n=args.n, seed=args.seed)
    teacher = make_teacher(args.teacher, **TeacherOptions.from_args(args).teacher_kwargs())
    params = SamplingParams(n=1, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed)
    resolved = {k: v for k, v in vars(args).items() if k not in ("handler", "json")}
    run = Path(args.out)
    check_resumable(run / "log.jsonl")
    if args.guided:
        given = {"samples_per_round": args.samples, "min_correct": args.min_correct, "max_rounds": args.guided_rounds, "check": args.guided_check}
        gcfg = GuidedConfig(
            strategy=args.guided, budget=args.budget, batch_size=args.batch_size, teacher_edits=args.teacher_edits,
            max_edits=args.max_edits, iteration=args.iteration, seed=args.seed, config_hash=config_hash(resolved),
            **{k: v for k, v in given.items() if v is not None},
        )
        write_config(resolved, run)
        return _guided(args, problems, teacher, params, gcfg, run)
    cfg = CollectConfig(
        samples_per_problem=1 if args.samples is None else args.samples, max_edits=args.max_edits, max_passes=args.passes, target_usable=args.target_usable,
        batch_size=args.batch_size, teacher_concurrency=args.teacher_concurrency, iteration=args.iteration, seed=args.seed,
        config_hash=config_hash(resolved),
    )
    write_config(resolved, run)
    student = load_student(args.student, precision=args.precision, adapter=args.adapter)
    info = {**student.describe(), "sampling": params.to_dict()}
    result = collect(problems, student_sampler(student, params), teacher, run / "log.jsonl", cfg, student_info=info)
    (run / "collect.json").write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n")
    if args.json:
        print(json.dumps(result.to_dict(), sort_keys=True))
    else:
        print(f"wrote {result.records_written} trajectories to {result.log_path} ({result.records_skipped} already there); "
              f"usable {result.usable}: {result.by_kind}; teacher calls {result.teacher_calls}, cost {format_cost(result.cost_usd, result.unpriced)}")
    note = sys.stderr if args.json else sys.stdout  # stdout stays pure JSON under --json
    if result.unavailable:
        print(f"note: {result.unavailable} trajectories were left out: the teacher did not answer; rerun the same command to do them", file=note)
    if result.stopped_early:
        print(f"note: {result.stopped_early}", file=note)
    return 0


def _guided(args: argparse.Namespace, problems: list, teacher, params, cfg: GuidedConfig, run: Path) -> int:
    from tripost.student import load_student

    need_teacher = cfg.strategy == "interactive" or cfg.teacher_edits
    student = load_student(args.student, precision=args.precision, adapter=args.adapter)
    info = {**student.describe(), "sampling": params.to_dict()}
    result = guided_collect(problems, guided_student_sampler(student, params), teacher if need_teacher else None,
                            run / "log.jsonl", cfg, student_info=info)
    (run / "collect.json").write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n")
    if args.json:
        print(json.dumps(result.to_dict(), sort_keys=True))
    else:
        print(f"wrote {result.records_written} records to {result.log_path} ({result.records_skipped} already there); "
              f"{result.rounds} round(s), {result.generation_calls} samples; coverage {result.coverage_round0:.0%} after round 0, "
              f"{result.coverage_final:.0%} at the end; correct trajectories {result.correct_final} "
              f"({result.correct_round0} from round 0); teacher calls {result.teacher_calls}")
    if result.stopped_early:
        print(f"note: {result.stopped_early}", file=sys.stderr if args.json else sys.stdout)
    return 0
