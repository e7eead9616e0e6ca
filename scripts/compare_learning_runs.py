"""Are two `bench_learning.py` runs the same run? For refactors that must not
change a number: every row of the two JSON tables (wall time aside) and every
collect log's records (the run folder's own path and the teacher's latency
aside) must be identical.

    python scripts/compare_learning_runs.py --before B.json --before-runs B_RUNS --after A.json --after-runs A_RUNS \
        --json docs/benchmarks/same-numbers.json --md docs/benchmarks/same-numbers.md

Exit status 0 when identical, 1 when not (the differences are printed).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

VARYING_ROW_KEYS = ("wall_s",)  # measured time, not a result
VARYING_CALL_KEYS = ("latency_s",)  # the teacher's measured latency


def rows(path: Path) -> list[str]:
    return [json.dumps({k: v for k, v in r.items() if k not in VARYING_ROW_KEYS}, sort_keys=True, default=str)
            for r in json.loads(path.read_text())["rows"]]


def records(log: Path, root: Path) -> list[str]:
    out = []
    for line in log.read_text().splitlines():
        r = json.loads(line)
        for call in r.get("teacher_calls") or []:
            for k in VARYING_CALL_KEYS:
                call.pop(k, None)
        out.append(json.dumps(r, sort_keys=True).replace(str(root), "RUN"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", type=Path, required=True, help="bench_learning JSON of the run before the change")
    p.add_argument("--before-runs", type=Path, required=True, help="its --out folder")
    p.add_argument("--after", type=Path, required=True)
    p.add_argument("--after-runs", type=Path, required=True)
    p.add_argument("--label", default="", help="what was compared (commits), for the page")
    p.add_argument("--json", type=Path)
    p.add_argument("--md", type=Path)
    args = p.parse_args(argv)

    rb, ra = rows(args.before), rows(args.after)
    logs = sorted(str(q.relative_to(args.before_runs)) for q in args.before_runs.rglob("log.jsonl"))
    per_log = {}
    for name in logs:
        other = args.after_runs / name
        b = records(args.before_runs / name, args.before_runs)
        a = records(other, args.after_runs) if other.exists() else None
        per_log[name] = {"records": len(b), "identical": a == b}
    missing = sorted(str(q.relative_to(args.after_runs)) for q in args.after_runs.rglob("log.jsonl")
                     if str(q.relative_to(args.after_runs)) not in per_log)
    same = rb == ra and all(v["identical"] for v in per_log.values()) and not missing
    summary = {"identical": same, "rows": len(rb), "rows_identical": rb == ra, "logs": len(per_log),
               "logs_identical": sum(v["identical"] for v in per_log.values()), "logs_only_after": missing}
    cmd = "python scripts/compare_learning_runs.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    table = [f"rows (wall time aside): {len(rb)} before, {len(ra)} after, identical: {rb == ra}"]
    table += [f"{name}: {v['records']} records, identical: {v['identical']}" for name, v in per_log.items()]
    table += [f"only after: {m}" for m in missing] + [f"same run: {same}"]
    print("\n".join(table))
    if args.json:
        args.json.write_text(json.dumps({"command": cmd, "label": args.label, "summary": summary, "logs": per_log}, indent=2) + "\n")
    if args.md:
        args.md.write_text(f"# Same numbers before and after\n\n{args.label}\n\nCommand: `{cmd}`\n\n"
                           "Rows of the learning table compared without their wall time; collect-log records without the run "
                           "folder's own path and the teacher's measured latency.\n\n```\n" + "\n".join(table) + "\n```\n")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
