"""`tripost run` (the whole loop) and `tripost report`."""

from __future__ import annotations

import argparse

from tripost.cli._io import check_out_dir
from tripost.errors import TripostError
from tripost.loop import Run
from tripost.report import write_report
from tripost.runconfig import RunConfig, key_help


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "run",
        help="the whole TriPosT loop: [iteration 0] -> collect -> buffer -> train -> eval, T times",
        description=(
            "Run TriPosT iterations into a run folder. Config: built-in defaults < --config FILE.toml < KEY=VALUE "
            "overrides (e.g. loop.iterations=2 train.epochs=1 tasks.families='[\"arithmetic\",\"word_sorting\"]'). "
            "Re-running the same command resumes an interrupted run; finished stages are skipped."
        ),
    )
    r.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    r.add_argument("--config", metavar="FILE.toml", help="a TOML config file")
    r.add_argument("--out", metavar="RUN", help="run folder (required unless --print-config or --keys)")
    r.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    r.add_argument("--keys", action="store_true", help="list every config key with its default and what it does, and exit")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(handler=cmd_run)

    p = sub.add_parser("report", help="write report.md and plots for a run folder", description="Write RUN/report.md, RUN/report.json and RUN/plots/*.png from a run folder.")
    p.add_argument("run", metavar="RUN")
    p.set_defaults(handler=cmd_report)


def cmd_run(args: argparse.Namespace) -> int:
    import json

    if args.keys:
        print(key_help())
        return 0
    cfg = RunConfig.load(args.config, args.overrides)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
        return 0
    if not args.out:
        raise TripostError("tripost run needs --out RUN (the run folder)")
    check_out_dir(args.out)
    Run(args.out, cfg, progress=not args.no_progress).run()
    print(f"run finished: {args.out}/report.md")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    if not Path(args.run).is_dir():
        raise TripostError(f"{args.run}: no such run folder")
    print(write_report(args.run))
    return 0
