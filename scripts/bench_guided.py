#!/usr/bin/env python
"""Guided sampling vs plain resampling at an equal number of samples.

    .venv/bin/python scripts/bench_guided.py            # embedded student, ~15 min on 2 busy CPU cores
    .venv/bin/python scripts/bench_guided.py --quick    # tiny random model, a 1-minute smoke run (writes nothing)

The same training problems (arithmetic, small preset) and seed for every
method. Round 0 (plain sampling, N per problem) is sampled once and shared:
each method starts from a copy of its log. Then each method spends the same
budget, B = P * N * (1 + R) sampled sequences in all, on the problems with
fewer than `--min-correct` correct samples: `resample` (no guidance: more
plain rounds, the brute-force baseline) and the four guidance strategies of
Guided Self-Improvement (answer, rationale, state_reset, interactive with the
scripted teacher). A method may run more than R guided rounds (up to 4R) if it
lifts problems over the bar and has budget left; samples actually spent are
reported. Coverage, the difficulty spread of the correct trajectories (tail
narrowing) and costs go into a table; JSON and markdown go to
docs/benchmarks/guided.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tripost.sources.guided import GuidedConfig, guided_collect, guided_student_sampler  # noqa: E402
from tripost.log import read_log  # noqa: E402
from tripost.student.hardware import machine_card  # noqa: E402
from tripost.tasks import get_task, sample_problems  # noqa: E402
from tripost.teachers.scripted import ScriptedTeacher  # noqa: E402

METHODS = ("resample", "answer", "rationale", "state_reset", "interactive")
COMMAND = "nice -n 19 env OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_guided.py"


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def log_extras(path: Path, problems) -> dict:
    """What the result object does not say: distinct correct rationales, and
    how many correct ones are the gold rationale verbatim."""
    gold = {p.id: norm(p.rationale) for p in problems}
    correct = [r for r in read_log(path) if r.kind == "direct" and r.source != "teacher"]
    texts = {(r.problem["id"], norm(r.turns[0]["rationale"])) for r in correct}
    return {
        "distinct_correct": len(texts),
        "gold_copies": sum(norm(r.turns[0]["rationale"]) == gold[r.problem["id"]] for r in correct),
        "correct_from_guided_rounds": sum(r.source == "guided" for r in correct),
    }


def run(args: argparse.Namespace) -> dict:
    import torch

    from tripost.student import SamplingParams, load_student

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "0")) or torch.get_num_threads())
    work = Path(tempfile.mkdtemp(prefix="bench-guided-"))
    spec = args.student
    if args.quick:
        from tripost.student.tiny import build_tiny_model

        spec = f"hf:{build_tiny_model(work / 'tiny')}"
    task = get_task("arithmetic")
    problems = sample_problems(task, split="train", subset="seen", preset="small", n=args.problems, seed=args.seed)
    t0 = time.perf_counter()
    student = load_student(spec, precision="fp32")
    load_s = time.perf_counter() - t0
    params = SamplingParams(temperature=args.temperature, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=args.seed)
    counter: dict[str, int] = {}
    sampler = guided_student_sampler(student, params, counter=counter)
    teacher = ScriptedTeacher()
    n, rounds = args.samples, args.rounds
    budget = args.problems * n * (1 + rounds)

    def cfg(strategy: str, max_rounds: int) -> GuidedConfig:
        return GuidedConfig(strategy=strategy, samples_per_round=n, min_correct=args.min_correct, max_rounds=max_rounds,
                            budget=budget, batch_size=args.batch_size, seed=args.seed)

    load_before = os.getloadavg()
    base = work / "round0.jsonl"
    t0 = time.perf_counter()
    r0 = guided_collect(problems, sampler, None, base, cfg("resample", 0), progress=not args.no_progress)
    round0 = {"seconds": round(time.perf_counter() - t0, 2), "tokens": counter.get("tokens", 0), "samples": r0.generation_calls,
              "coverage": r0.coverage_final, "correct": r0.correct_final}
    print(f"round 0: {r0.generation_calls} samples, coverage {r0.coverage_final:.2f}, {round0['seconds']} s", file=sys.stderr)

    methods = {}
    for m in args.methods:
        log = work / f"{m}.jsonl"
        shutil.copyfile(base, log)
        before = dict(counter)
        t0 = time.perf_counter()
        res = guided_collect(problems, sampler, teacher if m == "interactive" else None, log, cfg(m, 4 * rounds),
                             progress=not args.no_progress)
        secs = time.perf_counter() - t0
        methods[m] = {
            "result": res.to_dict(),
            "extras": log_extras(log, problems),
            "seconds_after_round0": round(secs, 2),
            "tokens_after_round0": counter.get("tokens", 0) - before.get("tokens", 0),
        }
        print(f"{m}: coverage {res.coverage_round0:.2f} -> {res.coverage_final:.2f}, {res.generation_calls} samples, "
              f"{secs:.1f} s", file=sys.stderr)
    if args.logs:
        Path(args.logs).mkdir(parents=True, exist_ok=True)
        for f in work.glob("*.jsonl"):
            shutil.copyfile(f, Path(args.logs) / f.name)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "command": COMMAND + (" --quick" if args.quick else ""),
        "config": {
            "student": spec if not args.quick else "tiny random model (tripost.student.tiny)", "precision": "fp32",
            "teacher": "scripted", "task": "arithmetic", "preset": "small", "subset": "seen", "split": "train",
            "problems": args.problems, "samples_per_round": n, "guided_rounds": rounds, "max_rounds": 4 * rounds,
            "min_correct": args.min_correct, "budget": budget, "max_new_tokens": args.max_new_tokens,
            "temperature": args.temperature, "top_p": 0.95, "seed": args.seed, "quick": args.quick,
        },
        "pool": dict(Counter(p.difficulty for p in problems)),
        "round0": round0,
        "methods": methods,
        "load_s": round(load_s, 2),
        "machine": {
            **machine_card(), "threads": torch.get_num_threads(),
            "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        },
    }


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def table(data: dict) -> str:
    levels = sorted(data["pool"])
    head = ["method", "coverage round 0", "coverage end", "coverage end, steps ok", "solved by guidance", "correct traj.", "steps ok",
            "distinct", "gold copies",
            *[f"collected {lv}" for lv in levels], "TV pool→collected", "samples", "tokens after r0", "teacher calls", "leaked", "s after r0"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for m in sorted(data["methods"], key=lambda x: METHODS.index(x) if x in METHODS else len(METHODS)):
        d = data["methods"][m]
        r, e = d["result"], d["extras"]
        tv = r["tail"]["tv_final"]
        row = [m, pct(r["coverage_round0"]), pct(r["coverage_final"]), pct(r["coverage_steps_final"]), str(r["solved_by_guidance"]),
               str(r["correct_final"]), str(r["steps_ok_final"]),
               str(e["distinct_correct"]), str(e["gold_copies"]), *[str(r["difficulty"]["collected"].get(lv, 0)) for lv in levels],
               "–" if tv is None else f"{tv:.2f}", str(r["generation_calls"]), str(d["tokens_after_round0"]), str(r["teacher_calls"]),
               str(r["leaked"]), f"{d['seconds_after_round0']:.0f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def markdown(data: dict) -> str:
    c, m = data["config"], data["machine"]
    pool = ", ".join(f"{k}: {v}" for k, v in sorted(data["pool"].items()))
    r0 = data["round0"]
    return (
        "# Guided sampling benchmark: coverage of hard problems at an equal sample budget\n\n"
        "Command (from the repository root):\n\n"
        f"    {data['command']}\n\n"
        f"Student `{c['student']}` ({c['precision']}), untrained; teacher `{c['teacher']}` (only `interactive` uses it). "
        f"{c['problems']} {c['task']} training problems ({c['preset']} preset, {c['subset']}; pool by difficulty: {pool}), "
        f"seed {c['seed']}. N = {c['samples_per_round']} samples per problem per round, temperature {c['temperature']}, "
        f"top-p {c['top_p']}, at most {c['max_new_tokens']} new tokens. A problem with fewer than {c['min_correct']} correct "
        f"samples gets the next round. Every method spends at most B = P·N·(1+R) = {c['budget']} samples "
        f"(R = {c['guided_rounds']} guided rounds' worth; up to {c['max_rounds']} rounds if it has budget left), "
        f"round 0 included and shared: round 0 was sampled once ({r0['samples']} samples, coverage {pct(r0['coverage'])}, "
        f"{r0['correct']} correct, {r0['seconds']:.0f} s) and each method resumed from a copy of its log.\n\n"
        + table(data) + "\n\n"
        "Columns: coverage = share of problems with at least one correct trajectory of the student's own, after round 0 "
        "and at the end; coverage end, steps ok = the same counting only trajectories whose every step the arithmetic step "
        "checker accepts (a right answer can come from a wrong or empty rationale); solved by guidance = problems with none after round 0 and at least one at the end; correct traj. = "
        "correct trajectories in the log (what the buffer is built from), steps ok = those with every step right, distinct = distinct (problem, rationale) pairs "
        "among them, gold copies = how many are the gold rationale verbatim; collected LEVEL = correct trajectories by "
        "difficulty; TV = total variation distance between the pool's and the correct trajectories' difficulty "
        "distributions (0: spread like the pool, 1: disjoint; – when nothing is correct); samples = sampled sequences, "
        "round 0 included; tokens after r0 = tokens the student generated after round 0 (a state reset's gold prefix is "
        "prompt, not generation); leaked = correct guided samples dropped for mentioning their guidance; s after r0 = wall "
        "seconds after round 0.\n\n"
        f"Machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}, torch {m['torch']} (torch threads: {m['threads']}). "
        f"1-minute load average before / after: {m['loadavg_1m_before_after'][0]} / {m['loadavg_1m_before_after'][1]}. "
        f"Student load {data['load_s']} s" + (f"; whole run {data['total_s'] / 60:.1f} min" if "total_s" in data else "") + ". Timings on a shared machine move with its load; samples and coverage do not "
        "depend on it (same seed, same problems).\n\n"
        "What the numbers mean, and what they do not: docs/guided.md. Raw numbers: [guided.json](guided.json).\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny random model, 4 problems, 2 samples, 1 round, 16 tokens; writes nothing")
    ap.add_argument("--student", default="smollm2-135m")
    ap.add_argument("--problems", type=int, default=None, help="default 12 (quick: 4)")
    ap.add_argument("--samples", type=int, default=None, help="N, samples per problem per round (default 4; quick: 2)")
    ap.add_argument("--rounds", type=int, default=None, help="R, guided rounds' worth of budget (default 1; quick: 1)")
    ap.add_argument("--min-correct", type=int, default=None, help="default 2 (quick: 1)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default 128 (quick: 16)")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--batch-size", type=int, default=16, help="problems per sampler call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--json", default=None, help="default docs/benchmarks/guided.json (quick: none)")
    ap.add_argument("--md", default=None, help="default docs/benchmarks/guided.md (quick: none)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--logs", metavar="DIR", help="keep the interaction logs (round0.jsonl, METHOD.jsonl) in DIR")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--render", metavar="JSON", help="only re-render the markdown (to --md, else stdout) from a saved JSON")
    args = ap.parse_args(argv)
    defaults = {"problems": (12, 4), "samples": (4, 2), "rounds": (1, 1), "min_correct": (2, 1), "max_new_tokens": (128, 16)}
    for k, (full, quick) in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, quick if args.quick else full)
    if args.render:
        data = json.loads(Path(args.render).read_text())
        if args.md:
            Path(args.md).write_text(markdown(data))
        else:
            print(markdown(data))
        return 0
    t0 = time.perf_counter()
    data = run(args)
    data["total_s"] = round(time.perf_counter() - t0, 1)
    print(table(data))
    if not args.no_write:
        js = args.json or (None if args.quick else str(ROOT / "docs/benchmarks/guided.json"))
        md = args.md or (None if args.quick else str(ROOT / "docs/benchmarks/guided.md"))
        if js:
            Path(js).parent.mkdir(parents=True, exist_ok=True)
            Path(js).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        if md:
            Path(md).parent.mkdir(parents=True, exist_ok=True)
            Path(md).write_text(markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
