#!/usr/bin/env python
"""Why does a trained student not revise? Probe its verdict and its revisions.

Test-time self-improvement (tripost.evaluate) needs two things of the student:
after its greedy attempt it must *say* the attempt is wrong (the verdict), and
after saying so its updated answer must be right (the revision). This script
measures both, apart, on an evaluation's own greedy attempts
(`eval.transcripts.jsonl` beside an `eval.json`):

  P(ok)      probability that the student's feedback is exactly the all-correct
             sentence, "Feedback: Step (1) to step (n) are correct. The final
             response is also correct." + EOS; 1 - P(ok) is all the mass on
             any other feedback (a flagged step). Exact, from one scoring pass.
  AUROC      how well 1 - P(ok) ranks wrong first attempts above right ones
             (0.5 = chance; tripost.gap.auroc).
  forced     the revision with the verdict taken out of the student's hands:
             the prefix "Feedback: In step" is appended to every attempt and
             the rest (which step, why, the updated answer) is decoded
             greedily. fix = wrong first attempts whose forced revision is
             right; break = right first attempts whose forced revision is wrong.

  wrong step the share of greedy attempts in which the task's step checker (the
             scripted teacher) finds a wrong step; TriPosT's feedback is about
             steps, so this, not the answer, is what a flag should track.
  step hit   of the attempts the student flagged at greedy decoding, the share
             whose flagged step is the checker's first wrong step.

With a verifier at chance, revising more often moves fix and break together,
in the ratio the forced columns show; only a better verdict separates them.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/probe_verdict.py \\
        --eval sft-gold=runs/bench-learning/tripost/it0 --eval tripost-t2=runs/bench-learning/tripost/it2 ...

Each `NAME=FOLDER` is a folder with `train/` (the adapter; absent = the base
student) and `eval/eval.transcripts.jsonl`; the evaluation problems (for the
step checker) come from the run folder `--run` (default: the nearest folder
above the first FOLDER that holds a config.json). Writes --json and --md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FORCED_PREFIX = " In step"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--eval", action="append", required=True, metavar="NAME=FOLDER", help="an iteration folder with train/ and eval/ (repeatable)")
    p.add_argument("--run", default=None, help="the run folder whose config defines the evaluation problems")
    p.add_argument("--student", default="smollm2-135m")
    p.add_argument("--max-new-tokens", type=int, default=200, help="for the forced revision (default 200)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", default=str(ROOT / "docs" / "benchmarks" / "verdict-probe.json"))
    p.add_argument("--md", default=str(ROOT / "docs" / "benchmarks" / "verdict-probe.md"))
    return p.parse_args(argv)


def eval_problems(run_dir: Path) -> dict[str, Any]:
    from tripost.errors import TripostError
    from tripost.loop import Run

    cfg = run_dir / "config.json"
    if not cfg.exists():
        raise TripostError(f"--run {run_dir}: no config.json there")
    return {p.id: p for p in Run(run_dir, json.loads(cfg.read_text())).eval_problems()}


def probe(name: str, folder: Path, problems: dict[str, Any], student_spec: str, max_new_tokens: int, batch_size: int) -> list[dict[str, Any]]:
    from types import SimpleNamespace

    from tripost.errors import TripostError
    from tripost.format import FEEDBACK_PREFIX, UPDATED_PREFIX, Feedback, parse_rationale
    from tripost.gap import auroc
    from tripost.student import load_student
    from tripost.student.generate import greedy
    from tripost.student.logprob import sequence_logprobs
    from tripost.student.prompt import build_prompt
    from tripost.tasks import get_task

    trans = folder / "eval" / "eval.transcripts.jsonl"
    if not trans.exists():
        raise TripostError(f"{name}: no {trans}")
    adapter = folder / "train" if (folder / "train" / "adapter_config.json").exists() else None
    st = load_student(student_spec, precision="fp32", adapter=adapter)
    recs = [json.loads(line) for line in trans.read_text().splitlines() if line.strip()]
    heads, ok_text = [], []
    for r in recs:
        attempt = r["text"].split("\n" + FEEDBACK_PREFIX)[0]
        heads.append(build_prompt(st.tokenizer, r["question"]) + attempt + "\n" + FEEDBACK_PREFIX)
        ok_text.append(" " + Feedback(n_steps=parse_rationale(attempt).n_steps, error_step=None).render())
    p_ok = [math.exp(s.sum) for s in sequence_logprobs(st, heads, ok_text, batch_size=batch_size // 2 or 1, append_eos=True)]
    forced = greedy(st, [h + FORCED_PREFIX for h in heads], max_new_tokens=max_new_tokens, batch_size=batch_size)
    per: list[dict[str, Any]] = []
    for r, p, g in zip(recs, p_ok, forced):
        task = get_task(r["family"])
        if r["problem_id"] not in problems:
            raise TripostError(f"{name}: problem {r['problem_id']} is not among the run's evaluation problems (wrong --run?)")
        check = task.check_steps(problems[r["problem_id"]], r["text"].split("\n" + FEEDBACK_PREFIX)[0])
        claimed = (r.get("claimed_errors") or [None])[0]
        update = g.text.split(UPDATED_PREFIX, 1)[1].split("\n" + FEEDBACK_PREFIX)[0] if UPDATED_PREFIX in g.text else ""
        answer = task.parse_answer(update) if update.strip() else None
        problem = SimpleNamespace(answer=r["gold"], question=r["question"], family=r["family"], difficulty=r["difficulty"], subset=r["subset"])
        per.append({"family": r["family"], "first_correct": bool(r["first_correct"]), "revised": bool(r["revised"]), "p_ok": p,
                    "step_wrong": check.first_error_step is not None, "flagged": claimed is not None,
                    "step_hit": claimed is not None and claimed == check.first_error_step,
                    "forced_correct": bool(answer is not None and task.check_answer(problem, answer))})
    rows = []
    for fam in sorted({x["family"] for x in per}) + ["total"]:
        xs = [x for x in per if fam in ("total", x["family"])]
        wrong = [x for x in xs if not x["first_correct"]]
        right = [x for x in xs if x["first_correct"]]
        mean = lambda v: sum(v) / len(v) if v else None  # noqa: E731
        rows.append({
            "name": name, "task": fam, "n": len(xs), "n_wrong": len(wrong), "n_right": len(right),
            "p_flag_wrong": mean([1 - x["p_ok"] for x in wrong]), "p_flag_right": mean([1 - x["p_ok"] for x in right]),
            "auroc": auroc([1 - x["p_ok"] for x in xs], [not x["first_correct"] for x in xs]),
            "revised_greedy": mean([x["revised"] for x in xs]), "step_wrong": mean([x["step_wrong"] for x in xs]),
            "n_flagged": sum(x["flagged"] for x in xs), "step_hit": mean([x["step_hit"] for x in xs if x["flagged"]]),
            "forced_fix": mean([x["forced_correct"] for x in wrong]), "forced_break": mean([not x["forced_correct"] for x in right]),
        })
    return rows


def _f(x: float | None, pct: bool = True) -> str:
    return "—" if x is None else (f"{100 * x:.1f}" if pct else f"{x:.2f}")


def main(argv: list[str] | None = None) -> int:
    from tripost.errors import TripostError

    args = parse_args(argv)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    problems: dict[str, Any] | None = None
    try:
        for item in args.eval:
            name, sep, folder = item.partition("=")
            if not sep or not name or not folder:
                raise TripostError(f"--eval {item!r}: expected NAME=FOLDER")
            print(f"[{name}] {folder}", file=sys.stderr, flush=True)
            if problems is None:
                run_dir = Path(args.run) if args.run else next((q for q in Path(folder).resolve().parents if (q / "config.json").exists()), None)
                if run_dir is None:
                    raise TripostError(f"{folder}: no run folder with a config.json above it; pass --run")
                problems = eval_problems(run_dir)
            rows += probe(name, Path(folder), problems, args.student, args.max_new_tokens, args.batch_size)
    except TripostError as e:
        print(f"probe_verdict: error: {e}", file=sys.stderr)
        return 2
    cmd = ("HF_HUB_OFFLINE=1 .venv/bin/python scripts/probe_verdict.py " + (f"--run {args.run} " if args.run else "")
           + " ".join(f"--eval {e}" for e in args.eval))
    md = ["# Verdict probe: does the student flag its wrong attempts, and can it fix them?", "", f"Command: `{cmd}`", "",
          f"Wall time {time.perf_counter() - t0:.0f} s. P(flag) = 1 - P(the feedback is exactly the all-correct sentence), on each "
          "evaluation's own greedy first attempts; AUROC of P(flag) for wrong vs right first attempts (0.5 = chance); "
          "forced fix / break = share of wrong / right first attempts whose revision is right / wrong when the feedback is "
          f"forced to start with \"Feedback:{FORCED_PREFIX}\"; wrong step = share of greedy attempts with a step the task's "
          "checker finds wrong; step hit = of the attempts the student flagged, the share that flagged the checker's first "
          "wrong step. All in % except AUROC.", "",
          "| adapter | task | n (wrong/right) | P(flag) wrong | P(flag) right | AUROC | wrong step | revised (greedy) | step hit | forced fix | forced break |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['name']} | {r['task']} | {r['n']} ({r['n_wrong']}/{r['n_right']}) | {_f(r['p_flag_wrong'])} | {_f(r['p_flag_right'])} | "
                  f"{_f(r['auroc'], False)} | {_f(r['step_wrong'])} | {_f(r['revised_greedy'])} | {_f(r['step_hit'])} | "
                  f"{_f(r['forced_fix'])} | {_f(r['forced_break'])} |")
    text = "\n".join(md) + "\n"
    Path(args.md).write_text(text)
    Path(args.json).write_text(json.dumps({"command": cmd, "seconds": round(time.perf_counter() - t0, 1), "rows": rows}, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
