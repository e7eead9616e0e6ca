"""Why a learning comparison came out as it did, read off its own files (issue 28).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/learning_evidence.py \
        --json docs/benchmarks/learning-evidence.json --md docs/benchmarks/learning-evidence.md

No model runs: for every comparison in `--docs` (learning-TASK.json, written
by scripts/bench_learning.py, finished or partial) it reads each method's test
evaluation transcripts and the TriPosT run's buffers, and measures what the
issue asks to look at when a target is not met:

- **the student as its own verifier**, on its first attempt (the evaluation
  asks every student for feedback, so each one gives a verdict): of right
  attempts, the share it calls correct; of wrong ones, the share it calls
  wrong; balanced accuracy (their mean: 50% is a constant verdict); and of
  wrong attempts it calls wrong at a step, the share that name the step the
  task's step checker finds first wrong (`Task.check_steps`);
- **what the second turn does** with a wrong first attempt the student
  called wrong: fixed, the same answer again, another wrong answer;
- **what TriPosT trained on**: each iteration's buffer by kind (improvement
  edits, direct attempts, gold), after rebalancing.

scripts/probe_verdict.py asks the same of a few students by running them
(the verdict's probability, a forced revision); this reads every method of a
finished comparison as evaluated, at no compute.

A method whose verdict barely depends on whether its attempt is right
(balanced accuracy near 50%) cannot choose what to revise: its fixes are
then bounded by luck, whatever the buffer holds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))  # its sibling bench_learning.py

from tripost.errors import TripostError  # noqa: E402
from tripost.fileio import atomic_write_json, atomic_write_page  # noqa: E402
from tripost.format import parse_rationale, parse_trajectory  # noqa: E402
from tripost.layout import RunLayout, StageFolder  # noqa: E402
from tripost.report import percent  # noqa: E402
from tripost.stats import share  # noqa: E402
from tripost.tasks import get_task  # noqa: E402

TASKS = ("arithmetic", "word_sorting")


def method_evals(runs: dict[str, str], T: int) -> dict[str, Path]:
    """Every test evaluation a comparison's folders hold, by method name."""
    tri, rej, demo, gp = (Path(runs[k]) for k in ("tripost", "rejection", "tripost-demo", "sft-gold+"))
    out = {"base": RunLayout(tri).base.eval_json, "sft-gold": RunLayout(tri).it(0).eval_json, "sft-gold+": StageFolder(gp).root / "eval" / "eval.json",
           "tripost-demo": RunLayout(demo).it(1).eval_json}
    for t in range(1, T + 1):
        out[f"tripost-t{t}"] = RunLayout(tri).it(t).eval_json
        out[f"rejection-t{t}"] = RunLayout(rej).it(t).eval_json
    return {m: p for m, p in out.items() if p.exists()}


def transcripts(eval_json: Path) -> list[dict[str, Any]]:
    """An evaluation's per-problem records (bench_learning.eval_records); missing ones are an error here."""
    records = bench_learning().eval_records(eval_json)
    if records is None:
        raise TripostError(f"{eval_json}: no evaluation, or no transcripts beside it")
    return records


def bench_learning():
    """scripts/bench_learning.py, as a module (its readers of a comparison's files)."""
    import bench_learning as module  # scripts/ is on sys.path (above)

    return module


def verifier_row(task: str, method: str, recs: list[dict[str, Any]], subset: str = "total") -> dict[str, Any]:
    """The first attempt's own verdict against its truth, and what the second turn did."""
    family = get_task(task)
    right = [r for r in recs if r["first_correct"]]
    wrong = [r for r in recs if not r["first_correct"]]
    says_ok = lambda r: bool(r["verdicts"]) and r["verdicts"][0] is True  # noqa: E731
    says_wrong = lambda r: bool(r["verdicts"]) and r["verdicts"][0] is False  # noqa: E731
    judged = lambda rs: [r for r in rs if says_ok(r) or says_wrong(r)]  # noqa: E731  feedback that gives a verdict
    tnr = share(sum(says_ok(r) for r in right), len(judged(right)))  # right attempts called correct
    tpr = share(sum(says_wrong(r) for r in wrong), len(judged(wrong)))  # wrong attempts called wrong
    located = checked = truth_last = 0
    blamed = [r for r in recs if says_wrong(r) and r["claimed_errors"][0] is not None]
    blames_last = sum(r["claimed_errors"][0] == parse_rationale(parse_trajectory(r["text"]).turns[0].rationale).n_steps for r in blamed)
    turn2: Counter = Counter()
    for r in wrong:
        if not says_wrong(r):
            continue
        if len(r["answers"]) > 1:
            turn2["fixed" if r["correct"][1] else "same answer" if r["answers"][1] == r["answers"][0] else "another wrong answer"] += 1
        else:
            turn2["no second attempt"] += 1
        claim = r["claimed_errors"][0]
        if claim is None:
            continue
        problem = family.from_record({"question": r["question"], "answer": r["gold"]})
        first = parse_trajectory(r["text"]).turns[0].rationale
        truth = family.check_steps(problem, first).first_error_step
        if truth is None:
            continue  # every step right but the answer wrong: no step to name
        checked += 1
        located += int(claim == truth)
        truth_last += int(truth == parse_rationale(first).n_steps)
    return {"task": task, "method": method, "subset": subset, "n": len(recs), "first_right": len(right), "first_wrong": len(wrong),
            "verdict_given": share(len(judged(recs)), len(recs)),
            "right_called_correct": tnr, "wrong_called_wrong": tpr,
            "balanced_accuracy": None if tnr is None or tpr is None else (tnr + tpr) / 2,
            "located_first_error": share(located, checked), "located_n": checked,
            # A student that always blames the last step "locates" every error made there: the baseline for `located`.
            "blames_last_step": share(blames_last, len(blamed)), "first_error_at_last_step": share(truth_last, checked),
            "turn2_after_called_wrong": dict(turn2)}


def error_kinds(task: str, recs: list[dict[str, Any]], top: int = 6) -> list[dict[str, Any]]:
    """What the first wrong step of the wrong seen first attempts says, as the
    task's step checker words it, with quoted words as "X" and numbers as N
    (so the same mistake on different problems counts once): the kinds of
    error a verifier would have to catch."""
    family, kinds = get_task(task), Counter()
    wrong = [r for r in recs if not r["first_correct"] and r["subset"] == "seen"]
    for r in wrong:
        check = family.check_steps(family.from_record({"question": r["question"], "answer": r["gold"]}),
                                   parse_trajectory(r["text"]).turns[0].rationale)
        kinds[re.sub(r"\d+", "N", re.sub(r'"[^"]*"', '"X"', check.reason or "no wrong step, a wrong final answer"))] += 1
    return [{"task": task, "kind": k, "count": v, "of": len(wrong)} for k, v in kinds.most_common(top)]


def buffer_rows(task: str, tri: Path, T: int) -> list[dict[str, Any]]:
    rows = []
    for t in range(1, T + 1):
        stats_path = RunLayout(tri).it(t).buffer / "stats.json"
        if stats_path.exists():
            s = json.loads(stats_path.read_text())
            rows.append({"task": task, "iteration": t, "before": s.get("by_kind_before"), "after": s.get("by_kind_after")})
    return rows


def markdown(data: dict[str, Any]) -> str:
    lines = ["# Why the learning comparisons came out as they did (issue 28)", "", f"Made by: `{data['command']}`", "",
             "Read off the comparisons' own files (no model runs): each method's greedy test evaluation, where every student is "
             "asked for feedback on its first attempt, and TriPosT's buffers. *Verdict*: the share of first attempts whose feedback "
             "says correct or wrong in the trained form (a student never trained to write feedback mostly does not); "
             "*right→correct*: of right first attempts with a verdict, the share the student calls correct; *wrong→wrong*: of wrong "
             "ones, the share it calls wrong; *balanced*: their mean (50% = a "
             "verdict that does not depend on the attempt); *located*: of wrong attempts it blames on a step, the share naming the "
             "step the task's step checker finds first wrong (n in brackets), beside *blames last*: of attempts blamed on a step, "
             "right or wrong, the share blaming the last one, and *error last*: of the located wrong attempts, the share whose first "
             "error is the last step (what a student that always blames the last step would score as located); *turn 2*: what the next attempt did after the student "
             "called a wrong attempt wrong. Per subset: pooled, a verdict that follows the subset (\"correct\" on unseen problems, "
             "nearly all wrong) would pass for one that follows the truth.", "",
             "| task | method | subset | n | right / wrong first | verdict | right→correct | wrong→wrong | balanced | located | blames last | error last | turn 2 after 'wrong' |",
             "|---|---|---|---:|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in data["verifier"]:
        t2 = ", ".join(f"{k} {v}" for k, v in sorted(r["turn2_after_called_wrong"].items())) or "—"
        lines.append(f"| {r['task']} | {r['method']} | {r['subset']} | {r['n']} | {r['first_right']} / {r['first_wrong']} | {percent(r['verdict_given'])} | "
                     f"{percent(r['right_called_correct'])} | "
                     f"{percent(r['wrong_called_wrong'])} | {percent(r['balanced_accuracy'])} | {percent(r['located_first_error'])} ({r['located_n']}) | "
                     f"{percent(r['blames_last_step'])} | {percent(r['first_error_at_last_step'])} | {t2} |")
    lines += ["", "What iteration 0 (sft-gold) gets wrong: the first wrong step of its wrong seen first attempts, in the task's step "
              "checker's words (for arithmetic, the computation done right; quoted words as \"X\", numbers as N); the most common kinds:", "", "| task | kind | count | of |", "|---|---|---:|---:|"]
    lines += [f"| {k['task']} | {k['kind'].replace('|', '/')} | {k['count']} | {k['of']} |" for k in data.get("error_kinds", [])]
    lines += ["", "TriPosT's buffers by kind (before → after rebalancing):", "", "| task | iteration | before | after |", "|---|---:|---|---|"]
    for b in data["buffers"]:
        fmt = lambda d: ", ".join(f"{k} {v}" for k, v in sorted((d or {}).items()))  # noqa: E731
        lines.append(f"| {b['task']} | {b['iteration']} | {fmt(b['before'])} | {fmt(b['after'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks"), help="where the learning-TASK.json files are")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--json", default=None, help="write the figures here")
    p.add_argument("--md", default=None, help="write the tables here")
    args = p.parse_args(argv)
    verifier, buffers, kinds = [], [], []
    try:
        for task in [t for t in args.tasks.split(",") if t]:
            path = Path(args.docs) / f"learning-{task}.json"
            if not path.exists():
                print(f"learning_evidence: no {path}; skipping {task}", file=sys.stderr)
                continue
            meta = json.loads(path.read_text())["meta"]
            runs, T = meta["runs"]["0"], meta["size"]["iterations"]
            for method, ev in method_evals(runs, T).items():
                recs = transcripts(ev)
                if method == "sft-gold":
                    kinds += error_kinds(task, recs)
                # Per subset: pooled, a verdict that follows the subset (say, "correct" on the
                # unseen problems, nearly all wrong) would pass for one that follows the truth.
                verifier += [verifier_row(task, method, [r for r in recs if r["subset"] == sub], sub) for sub in ("seen", "unseen")]
            buffers += buffer_rows(task, Path(runs["tripost"]), T)
    except (OSError, ValueError, KeyError, TripostError) as e:
        print(f"learning_evidence: error: {e}", file=sys.stderr)
        return 2
    command = "HF_HUB_OFFLINE=1 .venv/bin/python scripts/learning_evidence.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    data = {"command": command, "verifier": verifier, "buffers": buffers, "error_kinds": kinds}
    md = markdown(data)
    print(md)
    if args.json:
        atomic_write_json(args.json, data)
    if args.md:
        atomic_write_page(args.md, md)  # a hand-written "## Reading" below the tables is kept
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
