"""`tripost buffer` and `tripost replay`: logs -> replay buffer, offline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tripost.buffer import (BufferConfig, BufferStats, KIND_ORDER, TRL_FILE, build_buffer, preference_pairs, save_buffer,
                            save_preference_buffer, save_trl_buffer, student_tokenizer, to_dataset)
from tripost.cli._io import TRAIN_PRECISION_HELP, check_out_dir
from tripost.errors import TripostError
from tripost.fileio import atomic_write_json
from tripost.log import SKIP_HINT, read_log
from tripost.student.load import PRECISIONS
from tripost.student.prompt import CHAT_MODES, PromptFormat
from tripost.student.spec import EMBEDDED_NAME, SPEC_HELP, parse_spec
from tripost.train import TrainConfig, base_model_info

FORMATS = ("tripost", "trl")


def _ratio(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected IMPROVEMENT:DIRECT:GOLD like 1.5:1:1, got {text!r}") from None
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers IMPROVEMENT:DIRECT:GOLD, got {text!r}")
    return parts  # type: ignore[return-value]


def add_buffer_options(p: argparse.ArgumentParser) -> None:
    d = BufferConfig  # the defaults, written once there
    g = p.add_argument_group("buffer (in `tripost run`: [buffer])")
    ratio = ":".join(f"{r:g}" for r in d.ratio)
    g.add_argument("--ratio", type=_ratio, default=d.ratio, metavar="I:D:G", help=f"improvement:direct:gold ratio (default {ratio}, TriPosT's)")
    g.add_argument("--difficulty-mode", choices=("plain", "inverse", "cap"), default=d.difficulty_mode,
                   help=f"difficulty-aware sampling within a kind (default {d.difficulty_mode})")
    g.add_argument("--bucket-cap", type=float, default=d.bucket_cap, help=f"cap mode: largest share of one difficulty bucket (default {d.bucket_cap})")
    g.add_argument("--keep-last", type=int, default=None, metavar="K", help="keep only the last K iterations' records (default: every record of the logs given; a run keeps the last 1)")
    g.add_argument("--decay", type=float, default=None, help="keep a record from i iterations ago with probability DECAY**i")
    g.add_argument("--max-chars", type=int, default=d.max_chars, help=f"drop examples longer than this (default {d.max_chars})")
    g.add_argument("--no-dedupe", action="store_true", help="keep duplicate texts (what `tripost run` does for the label-free sources, whose repeated samples are their signal)")
    g.add_argument("--no-gold", action="store_true", help="no gold-rationale examples")
    g.add_argument("--no-verdict", action="store_true",
                   help="train a right attempt alone, without its closing 'correct' feedback (what `tripost run` does for the label-free sources)")
    g.add_argument("--turns", choices=("single", "whole"), default=BufferConfig.turns,
                   help=f"an improvement trajectory as one example per edit (single, TriPosT's authors) or one example (whole) "
                        f"(default {BufferConfig.turns})")
    g.add_argument("--seed", type=int, default=d.seed, help=f"seed of the buffer's sampling (default {d.seed})")
    g.add_argument("--skip-bad-lines", action="store_true", help="skip corrupt log lines instead of stopping")


def buffer_config(args: argparse.Namespace) -> BufferConfig:
    return BufferConfig(
        ratio=args.ratio, max_chars=args.max_chars, dedupe=not args.no_dedupe, difficulty_mode=args.difficulty_mode,
        bucket_cap=args.bucket_cap, keep_last=args.keep_last, decay=args.decay, include_gold=not args.no_gold, verdict=not args.no_verdict, turns=args.turns,
        seed=args.seed,
    )


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("buffer", help="build the replay buffer from interaction logs",
                       description="Filter, dedupe and rebalance the trajectories of interaction logs into a `datasets` training set.")
    b.add_argument("logs", nargs="+", metavar="LOG", help="interaction log files (JSON lines)")
    b.add_argument("--out", required=True, metavar="DIR", help="output folder: DIR/dataset (Arrow) and DIR/stats.json")
    b.add_argument("--json", action="store_true", help="print the stats as JSON instead of a table")
    b.add_argument("--pairs", action="store_true",
                   help="write the preference pairs the records carry (sharpen logs: best and worst sample) for train objective=dpo, "
                        "instead of the SFT buffer")
    add_buffer_options(b)
    t = b.add_argument_group("TRL's format (--format trl)")
    t.add_argument("--format", choices=FORMATS, default=FORMATS[0],
                   help="tripost: DIR/dataset for `tripost train` (default); trl: also DIR/trl/train.jsonl, TRL's prompt-completion "
                        "format with the instruction and chat template applied as tripost trains, and its dataset card DIR/trl/README.md")
    t.add_argument("--student", default=EMBEDDED_NAME, metavar="SPEC",
                   help=f"the student whose tokenizer and chat template render the prompts (default {EMBEDDED_NAME}; as train.student)")
    t.add_argument("--chat", choices=CHAT_MODES, default=PromptFormat.chat, help=f"use the chat template: as train.chat (default {PromptFormat.chat})")
    t.add_argument("--system", default=PromptFormat.system, metavar="TEXT", help="a system message: as train.system (default: the template's own)")
    t.add_argument("--prompt-template", default=PromptFormat.template, metavar="NAME",
                   help=f"the instruction: as train.prompt_template (default {PromptFormat.template})")
    b.set_defaults(handler=cmd_buffer)

    r = sub.add_parser("replay", help="rebuild the buffer from logs offline (zero teacher calls, zero sampling)",
                       description="Replay collected interaction logs: rebuild the replay buffer under RUN/buffer with no teacher and no student.")
    r.add_argument("logs", nargs="+", metavar="LOG")
    r.add_argument("--out", required=True, metavar="RUN", help="run folder")
    r.add_argument("--json", action="store_true")

    c = TrainConfig  # `tripost train`'s defaults, written once there
    t = r.add_argument_group("training from the rebuilt buffer (still no teacher and no sampling; as `tripost train`)")
    t.add_argument("--train", action="store_true", help="also train an adapter on the buffer into RUN/train")
    t.add_argument("--student", default=c.student, metavar="SPEC", help=f"student to train: {SPEC_HELP} (default {c.student})")
    t.add_argument("--adapter", metavar="DIR", help="continue from this adapter")
    t.add_argument("--precision", default=c.precision, choices=PRECISIONS, help=f"{TRAIN_PRECISION_HELP} (default {c.precision})")
    t.add_argument("--epochs", type=float, default=c.epochs, help=f"passes over the buffer (default {c.epochs:g})")
    add_buffer_options(r)
    r.set_defaults(handler=cmd_replay)


def _read(args: argparse.Namespace):
    records, bad = [], []
    for path in args.logs:
        lines: list[int] = []
        records += list(read_log(path, skip_bad_lines=args.skip_bad_lines, bad=lines, hint=SKIP_HINT))
        bad += [f"{path}:{n}" for n in lines]
    if bad:
        print(f"skipped {len(bad)} corrupt log line(s): {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}", file=sys.stderr)
    if not records:
        raise TripostError("no records in the given logs")
    return records, bad


def print_stats(stats: BufferStats, out: Path) -> None:
    print(f"records read: {stats.records}   retained: {stats.retained}   dropped: {stats.dropped or 'none'}")
    print(f"{'kind':12s} {'before':>7s} {'after':>7s}")
    for k in KIND_ORDER:
        print(f"{k:12s} {stats.by_kind_before.get(k, 0):7d} {stats.by_kind_after.get(k, 0):7d}")
    print(f"{'task':20s} {'before':>7s} {'after':>7s}")
    for t in sorted(set(stats.by_task_before) | set(stats.by_task_after)):
        print(f"{t:20s} {stats.by_task_before.get(t, 0):7d} {stats.by_task_after.get(t, 0):7d}")
    diffs = sorted(set().union(*[set(v) for v in stats.difficulty.values()]))
    print(f"{'difficulty':12s} {'pool':>7s} {'collected':>10s} {'buffer':>7s}")
    for d in diffs:
        print(f"{d:12s} {stats.difficulty['pool'].get(d, 0):7d} {stats.difficulty['collected'].get(d, 0):10d} {stats.difficulty['buffer'].get(d, 0):7d}")
    for note in stats.notes:
        print(f"note: {note}")
    print(f"wrote {out}/dataset and {out}/stats.json")


def cmd_buffer(args: argparse.Namespace) -> int:
    check_out_dir(args.out)
    cfg = buffer_config(args)
    trl = args.format == "trl"
    if trl:
        if args.pairs:
            raise TripostError("--format trl writes the SFT buffer; preference pairs (--pairs) train with `tripost train objective=dpo`")
        parse_spec(args.student)  # a bad spec is one line before the logs are read
        fmt = PromptFormat(template=args.prompt_template, chat=args.chat, system=args.system)
    records, _ = _read(args)
    if args.pairs:
        pairs, stats = preference_pairs(records, cfg)
        if not pairs:
            raise TripostError("no record carries a preference pair (`rejected`): pairs come from `tripost collect --source sharpen` logs with --samples 2 or more")
        out = save_preference_buffer(pairs, stats, args.out)
        print(json.dumps(stats.to_dict(), sort_keys=True) if args.json else f"wrote {len(pairs)} pairs to {out}/dataset and {out}/stats.json "
              f"(dropped: {stats.dropped or 'none'}); next: tripost train --buffer {out} --out ADAPTER objective=dpo")
        return 0
    examples, stats = build_buffer(records, cfg)
    out = save_buffer(examples, stats, args.out)
    trl_dir = None
    if trl:
        trl_dir = save_trl_buffer(to_dataset(examples), student_tokenizer(args.student), out, student=args.student, fmt=fmt,
                                  model=_model_name(args.student), stats=stats.to_dict(), sources=args.logs)
    if args.json:
        print(json.dumps(stats.to_dict(), sort_keys=True))
    else:
        print_stats(stats, out)
        if trl_dir:
            print(f"wrote {trl_dir}/{TRL_FILE} (TRL prompt-completion format) and {trl_dir}/README.md")
    return 0


def _model_name(spec: str) -> str | None:
    """What TRL loads as the student `spec` (for the dataset card): its Hub id, or its local folder."""

    parsed = parse_spec(spec)
    return base_model_info(parsed, parsed.path or Path(".")).get("hub_id") or (str(parsed.path) if parsed.kind == "hf" else None)


def cmd_replay(args: argparse.Namespace) -> int:
    # Everything that can be wrong is found before anything is written.
    check_out_dir(args.out)
    cfg = buffer_config(args)
    train_cfg = None
    if args.train:
        train_cfg = TrainConfig(student=args.student, adapter=args.adapter, precision=args.precision, epochs=args.epochs, seed=args.seed)
    records, bad = _read(args)
    examples, stats = build_buffer(records, cfg)
    run = Path(args.out)
    out = save_buffer(examples, stats, run / "buffer")
    summary = {"logs": args.logs, "records": len(records), "skipped_lines": bad, "examples": len(examples),
               "teacher_calls": 0, "generation_calls": 0, "buffer": stats.to_dict(), "train": None}
    if train_cfg is not None:
        from tripost.train import load_buffer_dataset, train_sft  # the trainer loads torch and transformers (~7 s): only when asked to train

        summary["train"] = train_sft(train_cfg, load_buffer_dataset(out), run / "train").to_dict()
    atomic_write_json(run / "replay.json", summary, sort_keys=True, ensure_ascii=True)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print_stats(stats, out)
        if summary["train"]:
            print(f"trained {summary['train']['steps']} steps; adapter in {run / 'train'}")
        print("replay: 0 teacher calls, 0 generation calls")
    return 0
