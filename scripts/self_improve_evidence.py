"""What each label-free method trained on, read off its collection logs (issue 28, step 4).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/self_improve_evidence.py --runs /work/campaign5/selfimprove \
        --json docs/benchmarks/self-improve-evidence.json --md docs/benchmarks/self-improve-evidence.md --keep-published

No model runs. Every label-free method (scripts/campaign.py, LABEL_FREE) picks
or weighs the student's own samples without a gold answer (guided uses the
gold answer to check and to guide), so whether it can beat plain SFT on gold
turns on one question the logs answer: is what it trains on right more often
than what the student samples? For each run folder `--runs/TASK/METHOD` and
each iteration's collection log (and each `--runs/TASK/METHOD-seedN`, the
campaign's second training seed of a method) it counts (a collection still running,
without its collect.json, is marked *collecting* and read as far as it got):

- **samples**: the attempts drawn, and the share whose answer is right
  (`final_correct`, the gold check every source records for reporting);
  **solved**: the share of problems with at least one right sample;
- **trained**: the examples the log gives the buffer and the buffer keeps
  (`direct` records less the duplicate texts its dedupe drops, where the run
  deduped; reweight mode: their weights; DPO: the chosen sides of its pairs),
  the share of that training mass whose answer
  is right, and the share whose every step is right by the task's step
  checker (a right answer can come from wrong steps);
- **mixed problems**: those whose samples are neither all right nor all
  wrong, the only ones where a choice can matter. On them, *picked right* is
  the share of the training mass that is right, and *chance* the share of
  samples that are right (what an arbitrary pick gets). A method whose own
  judgement is worth training on has picked right well above chance;
- per method: RLHF-sharpening's preference pairs (chosen right and rejected
  wrong teach the right direction, the other way round the wrong one; the
  rest nothing about correctness); the self-verifier's ranking (over the
  pairs of a right and a wrong sample of the same problem, the share where
  it scores the right one higher, ties half: 50% is a verifier that does not
  tell them apart), its mean score of right and of wrong samples, and the
  samples it keeps per problem whose samples are all right, mixed, all wrong
  (the quantile filter keeps every sample tied at its cut, so identical
  samples, common where the student is sure, are all kept), and the range
  of the training weights (reweight: all near 1 is every sample trained
  alike); guided's
  problems solved in the plain round and after guidance.

Each problem counts where the method groups its samples: a sharpen record
holds its N samples' counts (`student.sharpen`), a self-verified problem's
samples of one pass are scored together, guided's rounds of a problem belong
together.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tripost.buffer import BufferConfig, example_key, examples_from_records  # noqa: E402
from tripost.config import merge  # noqa: E402
from tripost.errors import TripostError  # noqa: E402
from tripost.fileio import atomic_write_json, atomic_write_page  # noqa: E402
from tripost.layout import RunLayout  # noqa: E402
from tripost.log import LogRecord, read_log  # noqa: E402
from tripost.report import percent  # noqa: E402
from tripost.runconfig import RunConfig  # noqa: E402
from tripost.sources.guided import key_round  # noqa: E402
from tripost.stats import share  # noqa: E402
from tripost.tasks import get_task  # noqa: E402

METHODS = ("sharpen", "sharpen-dpo", "self-verified-filter", "self-verified-reweight", "guided", "guided-vanilla", "guided-resample")  # campaign.py's LABEL_FREE, in its order


@dataclass
class Sample:
    """One drawn attempt of a problem, as a method's log tells it."""

    right: bool
    weight: float = 0.0  # its share of the training mass (0: not trained)
    steps_right: bool | None = None  # every step right by the step checker (trained samples only)
    score: float | None = None  # the self-verifier's score


@dataclass
class Group:
    """The samples a method chose among (one problem, or one pass of it)."""

    samples: list[Sample] = field(default_factory=list)
    plain_solved: bool = False  # guided: a right sample in the plain round

    @property
    def mixed(self) -> bool:
        return 0 < sum(s.right for s in self.samples) < len(self.samples)


def steps_right(rec: LogRecord, rationale: str) -> bool | None:
    """The task's step checker on a trained rationale (None: the checker cannot read it)."""
    if "error_step" in rec.turns[0]:
        return rec.turns[0]["error_step"] is None
    task = get_task(rec.problem.get("family", ""))
    try:
        return task.check_steps(task.from_record(rec.problem), rationale).first_error_step is None
    except (TripostError, ValueError, KeyError):
        return None


def sharpen_groups(records: list[LogRecord], dpo: bool) -> tuple[list[Group], dict[str, int]]:
    """One record per problem: its pick is trained (DPO: as the chosen side,
    where the record has a pair), its counts say how many of its N samples were
    right. DPO's pairs: the pick (chosen) against the lowest-rated sample (rejected)."""
    groups, pairs = [], {"chosen right, rejected wrong": 0, "chosen wrong, rejected right": 0, "both right or both wrong": 0}
    for rec in records:
        info = rec.student.get("sharpen") or {}
        n, right = int(info.get("samples", 1)), int(info.get("correct_samples", int(rec.final_correct)))
        trained = not dpo or rec.rejected is not None  # all samples alike: no pair, nothing for DPO to train
        pick = Sample(rec.final_correct, 1.0 if trained else 0.0, steps_right(rec, rec.turns[0]["rationale"]) if trained else None)
        others = [Sample(True)] * (right - int(rec.final_correct)) + [Sample(False)] * (n - 1 - right + int(rec.final_correct))
        groups.append(Group([pick] + others))
        if dpo and rec.rejected is not None:
            task = get_task(rec.problem.get("family", ""))
            rejected_right = task.check_answer(task.from_record(rec.problem), rec.rejected.get("answer"))
            pairs["chosen right, rejected wrong" if rec.final_correct and not rejected_right else
                  "chosen wrong, rejected right" if rejected_right and not rec.final_correct else "both right or both wrong"] += 1
    return groups, pairs


def sample_groups(records: list[LogRecord], by: str, buffer: BufferConfig | None = None) -> list[Group]:
    """Sources that log every sample: kept ones `direct` (trained at their weight), dropped or wrong ones `failed`.
    `buffer`: the run's BufferConfig as it resolved (RunConfig.buffer_config); None, a label-free run's of today
    (no dedupe, no verdict). Where it dedupes, a kept sample whose example text (made with its verdict and turns
    rules) an earlier one already has is not trained, as the buffer drops it (tripost.buffer.build_buffer)."""
    buffer = buffer or BufferConfig(dedupe=False, verdict=False)
    groups: dict[str, Group] = defaultdict(Group)
    seen: set[str] = set()
    for rec in records:
        key = re.sub(r"s\d+@it\d+$", "", rec.key) if by == "pass" else rec.problem.get("id", rec.key)
        trained = rec.kind == "direct" and rec.weight > 0
        if trained and buffer.dedupe:
            (example,), _ = examples_from_records([rec], include_gold=False, turns=buffer.turns, verdict=buffer.verdict)  # as the buffer makes it
            text = example_key(example)
            trained = text not in seen
            seen.add(text)
        g = groups[key]
        g.samples.append(Sample(rec.final_correct, rec.weight if trained else 0.0,
                                steps_right(rec, rec.turns[0]["rationale"]) if trained else None, rec.turns[0].get("verifier_score")))
        if key_round(rec.key) == 0 and rec.final_correct:  # not a resample round's, unguided too
            g.plain_solved = True
    return list(groups.values())


def verifier_ranking(groups: list[Group]) -> tuple[float | None, int]:
    """Over pairs (right, wrong) of samples of one group, the share where the right one scores higher (ties half)."""
    wins, n = 0.0, 0
    for g in groups:
        right = [s.score for s in g.samples if s.right and s.score is not None]
        wrong = [s.score for s in g.samples if not s.right and s.score is not None]
        for a in right:
            for b in wrong:
                wins, n = wins + (1.0 if a > b else 0.5 if a == b else 0.0), n + 1
    return share(wins, n), n


def iteration_row(task: str, method: str, t: int, records: list[LogRecord], buffer: BufferConfig | None = None) -> dict[str, Any]:
    pairs: dict[str, int] = {}
    if method.startswith("sharpen"):
        groups, pairs = sharpen_groups(records, dpo=method == "sharpen-dpo")
    else:
        groups = sample_groups(records, "problem" if method.startswith("guided") else "pass", buffer)
    samples = [s for g in groups for s in g.samples]
    trained = [s for s in samples if s.weight > 0]
    mass = sum(s.weight for s in trained)
    mixed = [g for g in groups if g.mixed]
    mixed_trained = [s for g in mixed for s in g.samples if s.weight > 0]
    checked_steps = [s for s in trained if s.steps_right is not None]
    row: dict[str, Any] = {
        "task": task, "method": method, "iteration": t, "groups": len(groups), "samples": len(samples),
        "samples_right": share(sum(s.right for s in samples), len(samples)),
        "solved": share(sum(any(s.right for s in g.samples) for g in groups), len(groups)),
        "trained": len(trained), "trained_right": share(sum(s.weight for s in trained if s.right), mass),
        "trained_steps_right": share(sum(s.weight for s in checked_steps if s.steps_right), sum(s.weight for s in checked_steps)),
        "mixed": len(mixed), "mixed_trained": len(mixed_trained),
        "mixed_picked_right": share(sum(s.weight for s in mixed_trained if s.right), sum(s.weight for s in mixed_trained)),
        # An arbitrary pick among a mixed group's samples is right as often as its samples are, group by group.
        "mixed_chance": share(sum(s.weight * sum(x.right for x in g.samples) / len(g.samples) for g in mixed for s in g.samples if s.weight > 0),
                              sum(s.weight for s in mixed_trained)),
    }
    if method == "sharpen-dpo":  # SFT-sharpening logs the worst sample too, but trains the pick alone
        row["dpo_pairs"] = pairs
    # Training mass per problem by what its samples were: a filter can favour the problems whose
    # samples agree (ties keep every sample) without telling right from wrong.
    kinds = {"all right": [g for g in groups if g.samples and all(s.right for s in g.samples)], "mixed": mixed,
             "all wrong": [g for g in groups if not any(s.right for s in g.samples)]}
    row["trained_per_problem"] = {k: share(sum(s.weight for g in gs for s in g.samples), len(gs)) for k, gs in kinds.items()}
    if method.startswith("self-verified"):
        row["verifier_ranks_right_higher"], row["verifier_pairs"] = verifier_ranking(groups)
        scores = {k: [s.score for s in samples if s.right == k and s.score is not None] for k in (True, False)}
        row["mean_score_right"], row["mean_score_wrong"] = (share(sum(scores[k]), len(scores[k])) for k in (True, False))
    if method == "self-verified-reweight" and trained:  # how far the weights move from 1 (all ~1: every sample trained alike)
        row["weight_range"] = [round(min(s.weight for s in trained), 4), round(max(s.weight for s in trained), 4)]
    if method.startswith("guided"):
        row["solved_plain_round"] = share(sum(g.plain_solved for g in groups), len(groups))
    return row


def run_rows(folder: Path, task: str, method: str) -> list[dict[str, Any]]:
    layout, rows = RunLayout(folder), []
    config = json.loads(layout.config.read_text()) if layout.config.is_file() else {}
    # As the run's buffer resolved it (a key added since the run began at its default); without a config,
    # as a run today would for these label-free sources (sample_groups' default).
    run_cfg = RunConfig.from_dict(merge(RunConfig.defaults(), config)) if config else None
    for t in layout.iterations():
        stage = layout.it(t)
        if t > 0 and stage.log.is_file():
            row = iteration_row(task, method, t, list(read_log(stage.log)), run_cfg.buffer_config(t) if run_cfg else None)
            if stage.buffer_stats.is_file():  # what the buffer itself kept: the count above should match it
                stats = json.loads(stage.buffer_stats.read_text())
                row["buffer_examples"] = sum(stats.get("by_kind_after", {}).values())
                row["duplicates_dropped"] = int(stats.get("dropped", {}).get("duplicate", 0))
            row["finished"] = stage.collect_json.is_file()  # written when the collection ends; else its records so far
            rows.append(row)
    return rows


def score(x: float | None) -> str:
    """A mean verifier score, or — where there is none (no right, or no wrong, sample scored yet)."""
    return "—" if x is None else f"{x:.3f}"


def notes(r: dict[str, Any]) -> str:
    if not r.get("finished", True):
        return "collecting: its records so far; " + (notes({**r, "finished": True}) or "")
    if r.get("duplicates_dropped"):
        return f"the buffer dropped {r['duplicates_dropped']} duplicate texts; " + notes({**r, "duplicates_dropped": 0})
    if "dpo_pairs" in r:
        return "pairs: " + ", ".join(f"{k} {v}" for k, v in r["dpo_pairs"].items())
    if "verifier_pairs" in r:
        per = r["trained_per_problem"]
        return (f"verifier ranks the right sample higher in {percent(r['verifier_ranks_right_higher'])} of {r['verifier_pairs']} right/wrong "
                f"pairs; mean score right {score(r['mean_score_right'])}, wrong {score(r['mean_score_wrong'])}; kept a problem: "
                + ", ".join(f"{k} {'—' if v is None else f'{v:.2f}'}" for k, v in per.items())
                + (f"; weights {r['weight_range'][0]:.3f}-{r['weight_range'][1]:.3f}" if r.get("weight_range") else ""))
    if "solved_plain_round" in r:
        after = "after the unguided rounds" if r["method"] == "guided-resample" else "after guidance"
        return f"solved in the plain round {percent(r['solved_plain_round'])}, {after} {percent(r['solved'])}"
    return ""


def kept_note(rows: list[dict[str, Any]]) -> list[str]:
    """Where the rows come from more than one folder (--keep-published): which runs were read from which."""
    folders: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        name = f"{r['task']} {r['method']}" + (f" (seed {r['seed']})" if r.get("seed") else "")
        if name not in folders[str(r.get("runs"))]:
            folders[str(r.get("runs"))].append(name)
    if len(folders) < 2:
        return []
    return ["Read from more than one campaign folder (the earlier ones are gone; their rows are kept as published): "
            + "; ".join(f"`{f}`: {', '.join(names)}" for f, names in folders.items()) + ".", ""]


def markdown(data: dict[str, Any]) -> str:
    lines = ["# What the label-free methods trained on (issue 28, step 4)", "", f"Made by: `{data['command']}`", "",
             "Read off each run's collection logs (no model runs); scripts/self_improve_evidence.py's docstring defines the "
             "columns. *right samples*: of the attempts drawn; *solved*: problems with a right sample; *trained*: examples "
             "the buffer kept (after its dedupe, where the run deduped), and of their training mass the share with a right answer and with every step right; "
             "*mixed*: problems (self-verified: a problem's pass) whose samples are partly right, where a choice can matter: "
             "*picked right* is the share of what the method trained on them that is right, *chance* what an arbitrary pick "
             "would get.", "",
             *kept_note(data["rows"]),
             "| task | method | it | problems | samples | right samples | solved | trained | trained right | steps right | "
             "mixed | picked right | chance | notes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in data["rows"]:
        seed = f" (seed {r['seed']})" if r.get("seed") else ""
        lines.append(f"| {r['task']} | {r['method']}{seed} | {r['iteration']} | {r['groups']} | {r['samples']} | {percent(r['samples_right'])} | "
                     f"{percent(r['solved'])} | {r['trained']} | {percent(r['trained_right'])} | {percent(r['trained_steps_right'])} | "
                     f"{r['mixed']} | {percent(r['mixed_picked_right'])} | {percent(r['mixed_chance'])} | {notes(r)} |")
    return "\n".join(lines) + "\n"


def with_published(rows: list[dict[str, Any]], published: Path) -> list[dict[str, Any]]:
    """`rows` and the rows `published` holds of runs (task, method, seed) that
    `rows` has none of, as published; those written before rows named their
    folder take the --runs of the command that wrote them."""
    before = json.loads(published.read_text()) if published.exists() else {}
    was = re.search(r"--runs (\S+)", before.get("command", ""))
    have = {(r["task"], r["method"], r["seed"]) for r in rows}
    kept = [{**r, "seed": r.get("seed", 0), "runs": r.get("runs") or (was.group(1) if was else None)} for r in before.get("rows", [])
            if (r["task"], r["method"], r.get("seed", 0)) not in have]
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(rows + kept, key=lambda r: (r["task"], order.get(r["method"], len(order)), r["seed"], r["iteration"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", required=True, help="the campaign's label-free folder: one run folder per TASK/METHOD")
    p.add_argument("--json", default=None, help="write the figures here")
    p.add_argument("--md", default=None, help="write the table here (a hand-written '## Reading' below it is kept)")
    p.add_argument("--keep-published", action="store_true", help="keep --json's rows of runs that --runs has no folder of, as "
                   "published (campaign.py start --from-docs --keep-published: a lost folder's runs), each naming the folder it was read from")
    args = p.parse_args(argv)
    if args.keep_published and not args.json:
        print("self_improve_evidence: error: --keep-published keeps the rows of --json; name it", file=sys.stderr)
        return 2
    runs = Path(args.runs)
    if not runs.is_dir():
        print(f"self_improve_evidence: error: {runs}: no such folder", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    try:
        for task_dir in sorted(d for d in runs.iterdir() if d.is_dir()):
            for method in METHODS:
                # The method's run, then its runs at other seeds (campaign.label_free_dir: METHOD-seedN).
                again = sorted((int(m.group(1)), f) for f in task_dir.glob(f"{method}-seed*")
                               if f.is_dir() and (m := re.fullmatch(rf"{re.escape(method)}-seed(\d+)", f.name)))
                for seed, folder in ([(0, task_dir / method)] if (task_dir / method).is_dir() else []) + again:
                    rows += [{**r, "seed": seed, "runs": str(runs)} for r in run_rows(folder, task_dir.name, method)]
        if args.keep_published:
            rows = with_published(rows, Path(args.json))
    except (OSError, ValueError, KeyError, TripostError) as e:
        print(f"self_improve_evidence: error: {e}", file=sys.stderr)
        return 2
    if not rows:
        print(f"self_improve_evidence: error: no collection logs under {runs}/TASK/METHOD/itN/collect", file=sys.stderr)
        return 2
    command = "HF_HUB_OFFLINE=1 .venv/bin/python scripts/self_improve_evidence.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    data = {"command": command, "rows": rows}
    md = markdown(data)
    print(md)
    if args.json:
        atomic_write_json(args.json, data)
    if args.md:
        atomic_write_page(args.md, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
