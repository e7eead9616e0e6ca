"""Where the loss of a self-training round comes from: the student's own
likelihood of what its buffer trains, right answers against wrong ones
(issue 28, step 4).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/trained_likelihood.py \
        --run /work/campaign4/selfimprove/arithmetic/sharpen --run /work/campaign4/selfimprove/arithmetic/self-verified-filter \
        --json docs/benchmarks/trained-likelihood.json

For each run folder and iteration (default 1) it scores every example of the
iteration's buffer (`itT/buffer`, what the trainer was given) under the
weights the iteration started from (`it{T-1}/train`), the completion and its
closing end-of-sequence token after the prompt rendered as in training. The
trainer's loss is the cross-entropy summed over target tokens and divided by
their number, so an example's share of the first step's loss is its summed
negative log-likelihood: a sample the student already writes with high
probability (its confident answers) contributes little, a low-probability one
drawn at temperature 1.0 a lot. Printed per run: examples and target tokens
by right / wrong answer (the task's check against the gold answer), their
mean per-token NLL, and the share of the summed NLL (the loss) the wrong ones
carry; then the same by the source of the sample each example came from (the
log record's `source`): for guided (GSI), the plain round's samples
(`rejection`) against those drawn with a hint (`guided`), which train under
the plain prompt. One model pass over each buffer (bf16 where the CPU has it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tripost.buffer import Example, example_key, examples_from_records  # noqa: E402
from tripost.errors import TripostError  # noqa: E402
from tripost.fileio import atomic_write_json  # noqa: E402
from tripost.layout import RunLayout  # noqa: E402
from tripost.log import read_log  # noqa: E402
from tripost.report import percent  # noqa: E402
from tripost.stats import share  # noqa: E402
from tripost.tasks import get_task  # noqa: E402


def score_run(folder: Path, t: int, batch_size: int) -> dict[str, Any]:
    from tripost.student import build_prompt, load_student
    from tripost.student.logprob import sequence_logprobs
    from tripost.train.data import load_buffer_dataset

    layout = RunLayout(folder)
    stage, start = layout.it(t), layout.it(t - 1).train
    if not start.exists():
        raise TripostError(f"{start}: no weights for iteration {t} to start from")
    records = list(read_log(stage.log))
    problems = {r.problem["id"]: r.problem for r in records}
    origin = source_by_example(records)
    ds = load_buffer_dataset(stage.buffer)
    config = json.loads(layout.config.read_text()) if layout.config.is_file() else {}
    student = load_student(config.get("student", {}).get("spec", "smollm2-135m"), precision="auto", adapter=str(start))
    prompts = [build_prompt(student.tokenizer, q) for q in ds["prompt"]]
    scores = sequence_logprobs(student, prompts, list(ds["completion"]), batch_size=batch_size, append_eos=True, progress=True)
    new = lambda: {"examples": 0, "tokens": 0, "nll": 0.0}  # noqa: E731
    rows, sources = {True: new(), False: new()}, defaultdict(new)
    for row, score in zip(ds, scores):
        problem = problems[row["problem_id"]]
        task = get_task(problem["family"])
        right = task.check_answer(task.from_record(problem), task.parse_answer(row["completion"]))
        for r in (rows[right], sources[origin.get(example_key(Example(**row)), "unknown")]):
            r["examples"] += 1
            r["tokens"] += score.n_tokens
            r["nll"] -= score.sum
    total = rows[True]["nll"] + rows[False]["nll"]
    summary = lambda r: {"examples": r["examples"], "tokens": r["tokens"], "mean_token_nll": share(r["nll"], r["tokens"])}  # noqa: E731
    out: dict[str, Any] = {"run": str(folder), "iteration": t, "start": str(start),
                           "right": summary(rows[True]), "wrong": summary(rows[False])}
    out["wrong_share_of_examples"] = share(rows[False]["examples"], rows[True]["examples"] + rows[False]["examples"])
    out["wrong_share_of_loss"] = share(rows[False]["nll"], total)
    out["by_source"] = {name: {**summary(r), "share_of_loss": share(r["nll"], total)} for name, r in sorted(sources.items())}
    return out


def source_by_example(records: list[Any]) -> dict[str, str]:
    """The source of the log record each trained example came from, by the buffer's own key (first one wins,
    as the buffer's dedupe keeps the first), whether the buffer ended right attempts with their verdict or not."""
    origin: dict[str, str] = {}
    for rec in records:
        if rec.kind == "direct":
            for verdict in (True, False):
                for example in examples_from_records([rec], include_gold=False, verdict=verdict)[0]:
                    origin.setdefault(example_key(example), rec.source)
    return origin


def run_name(run: str) -> str:
    """A run folder as its last two parts (task/method, or archive/method)."""
    return "/".join(Path(run).parts[-2:])


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| run | it | right: examples | wrong: examples | right: NLL/token | wrong: NLL/token | wrong share of examples | wrong share of loss |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        f = lambda x: "—" if x is None else f"{x:.3f}"  # noqa: E731
        lines.append(f"| {run_name(r['run'])} | {r['iteration']} | {r['right']['examples']} | {r['wrong']['examples']} | "
                     f"{f(r['right']['mean_token_nll'])} | {f(r['wrong']['mean_token_nll'])} | {percent(r['wrong_share_of_examples'])} | "
                     f"{percent(r['wrong_share_of_loss'])} |")
    lines += ["", "| run | it | source | examples | NLL/token | share of loss |", "|---|---:|---|---:|---:|---:|"]
    for r in results:
        for name, row in r.get("by_source", {}).items():
            nll = "—" if row["mean_token_nll"] is None else f"{row['mean_token_nll']:.3f}"
            lines.append(f"| {run_name(r['run'])} | {r['iteration']} | {name} | {row['examples']} | {nll} | {percent(row['share_of_loss'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--run", action="append", required=True, help="a label-free run folder (repeat for several)")
    p.add_argument("--iteration", type=int, default=1, help="the iteration whose buffer is scored (default 1)")
    p.add_argument("--batch-size", type=int, default=16, help="examples scored together (default 16)")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args(argv)
    if args.iteration < 1:
        print("trained_likelihood: error: --iteration must be 1 or more", file=sys.stderr)
        return 2
    try:
        results = [score_run(Path(run), args.iteration, args.batch_size) for run in args.run]
    except (OSError, KeyError, ValueError, TripostError) as e:
        print(f"trained_likelihood: error: {e}", file=sys.stderr)
        return 2
    print(table(results))
    if args.json:
        command = "HF_HUB_OFFLINE=1 .venv/bin/python scripts/trained_likelihood.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
        from tripost.student.hardware import machine_card

        atomic_write_json(args.json, {"command": command, "machine": machine_card(measure=False), "runs": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
