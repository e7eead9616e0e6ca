"""The learning campaign (issue 28), made for long work on a small machine.

    python3 scripts/campaign.py start  [--dir DIR] [--commit REV]   # pinned clone + .venv, then `run` in the background
    python3 scripts/campaign.py start  --dir DIR --advance          # move a stopped campaign to a later commit (new stages)
    python3 scripts/campaign.py start  --dir NEW --from-docs        # step 4 alone, when the folder of steps 1-3 is lost
    python3 scripts/campaign.py start  --dir NEW --from-docs --keep-published   # ... and only the step-4 runs not yet published
    python3 scripts/campaign.py run    --dir DIR                    # the worker (what `start` launches)
    python3 scripts/campaign.py status [--dir DIR]                  # where it stands: minutes per finished stage, hours left
    .venv/bin/python scripts/campaign.py publish [--dir DIR]        # learning, self-improve, bigbench .json/.md again, with this checkout's reporting
    tail -f DIR/campaign.log                                        # one line per stage

`start` clones this repository at REV (default HEAD) into DIR/src, installs
it into DIR/src/.venv with scripts/setup.sh, and launches `run` from that
clone in the background, so editing the working tree cannot change a
campaign half way. DIR/campaign.json records the commit; a later `start`
on the same DIR resumes at that commit. `start --advance` moves a campaign
whose worker has stopped to a later commit of the same history (HEAD, or
--commit): finished stages are kept, each result records the commit it was
made at (campaign.json `history`), and the stages the new commit adds run
next; any other commit needs a new DIR.

`run` measures the machine first (the machine card, training and sampling
tokens/s on the real student), prints the plan with each stage's projected
time, then runs the stages in order. Every stage is a `tripost` command (or
a deterministic file write) whose output says whether it finished, so a
killed or stopped campaign resumes where it stopped; if DIR is gone the
campaign starts over, and says so. Each finished cell is appended at once
to `--docs`/learning.json and learning.md (default: the docs/benchmarks of
the repository `start` was run from), so partial results can be committed.

Stages (the plan; step numbers are issue 28's):

1. competence: iteration 0 is SFT on gold rationales alone (no feedback
   line, tripost.buffer.rationale_examples) of one task, small preset,
   trained in continued chunks of 1 epoch over fresh problems
   (`tripost train --adapter PREVIOUS`), first-attempt accuracy (greedy,
   `--max-turns 0`) on 150 seen + 150 unseen held-out test problems after
   400, 800, 1,600 and 3,200 gold examples, with Wilson intervals:
   `sft_gold_curve`. Iteration 0 of the comparison is the smallest
   checkpoint at >= 30% first-attempt accuracy, or the best reached.

2. comparison on arithmetic: scripts/bench_learning.py --size campaign
   --tasks arithmetic from that iteration 0 (`--iteration0 CHECKPOINT`,
   its gold examples and the training tokens of the whole chunk chain):
   sft-gold, sft-gold+ (token-matched), TriPosT iterations 1-2, tripost-demo
   and rejection on 200 seen + 200 unseen held-out problems, attempt + 2
   self-improvement turns, the iteration chosen on 100 + 100 val problems;
   paired bootstrap intervals against sft-gold+. It writes
   `--docs`/learning-arithmetic.{json,md,png} as each run finishes;
   learning.json/.md carry its rows and verdict when it is done.

3. word_sorting: the same competence curve (competence/word_sorting/) and
   comparison (learning-word_sorting.*) on the second task.

When both comparisons have finished, learning.json carries the targets on
the total of both tasks (`pooled`: each method's per-problem records pooled).

4. label-free methods: per task, SFT-sharpening, RLHF-sharpening (DPO),
   self-verified filter and reweight, GSI, and GSI's own baselines (its plain
   round alone: vanilla self-improvement; and its extra rounds unguided:
   brute-force resampling), each a `tripost run` from the
   comparison's iteration 0 (linked) with its problems and evaluation, each
   iteration at TriPosT's mean training tokens (`train.token_budget`):
   `--docs`/self-improve.{json,md}, beside sft-gold and sft-gold+, and each
   run's per-problem outcomes in self-improve-outcomes.json (what a later
   folder pairs its runs with when this one is lost).
   RLHF-sharpening links SFT-sharpening's finished iteration-1 collection
   (`shared_collection`: the same samples and picks; only training differs).
   scripts/self_improve_evidence.py reads what each method trained on.
   Last, a second training seed of the reweight and guided on word_sorting,
   then of sharpen, the reweight and guided on arithmetic
   (LABEL_FREE_REPEATS; folders METHOD-seed1): how far a run moves
   with its seed alone, the spread a difference between methods has to clear.

5. BIG-bench transfer (issue 28's "real-world transfer"): right after each
   task's comparison, iteration 0, sft-gold+ and the final students (TriPosT's
   chosen iteration, tripost-demo, rejection) and the base model, scored on
   the BIG-Bench-Hard file of the same family (word_sorting;
   multistep_arithmetic_two for arithmetic) through `tripost tasks import`
   and `tripost eval --data`, with the comparison's evaluation (attempt + 2
   turns) and room for the file's longest gold rationale:
   `--docs`/bigbench.{json,md}. The files are not shipped: put BBH's
   `bbh/TASK.json` (github.com/suzgunmirac/BIG-Bench-Hard) in DIR/bigbench/;
   until then the stage waits (`status` says which file) and the rest runs.
   The task generators are not changed to fit BIG-bench.

`start --from-docs` (a new DIR, when the folder of a campaign whose steps
1-3 and 5 are committed is lost, as on a new machine): step 4 alone, at the
pinned commit, rebuilding only what it needs of the committed steps. Per
task: iteration 0 again (the competence chain up to the committed chosen
checkpoint: the same problems, seed and chunks, evaluated as the curve was,
next to the committed point), then its controls (`controls/TASK`: sft-gold,
that iteration 0 evaluated as the comparison evaluates, and sft-gold+,
trained further on fresh gold to the committed TriPosT training tokens),
then its label-free methods at the committed TriPosT tokens per iteration.
self-improve.* reads each method against these controls (one commit, one
iteration 0) and records the rebuilt iteration 0 beside the committed one;
learning.* and bigbench.* are left as committed. With --keep-published
(when step 4's folder is lost too, part way), the runs self-improve.json
already has rows of are kept as published and not run again; a task's
iteration 0 and controls are rebuilt just before its first run that is left,
one task at a time (the task whose rebuild this folder has begun first).
A second-seed run still to come is read against its first seed problem by
problem: where the kept first seed has no committed outcomes
(self-improve-outcomes.json), the first seed runs again, just before it.

The demo (step 7) is scripts/demo.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `start` runs under any python3: tripost's stdlib-only modules come from this checkout
sys.path.insert(0, str(ROOT / "scripts"))  # its sibling bench_learning.py

from tripost.fileio import atomic_write_json, atomic_write_page  # noqa: E402
from tripost.layout import RunLayout, StageFolder  # noqa: E402
from tripost.report import percent  # noqa: E402
from tripost.tasks.base import difficulty_sort_key  # noqa: E402

DEFAULT_DIR = Path(os.environ.get("TRIPOST_CAMPAIGN_DIR", "/work/campaign"))

# Each task: a competence curve, then its comparison (steps 1-2 for
# arithmetic, step 3 for word_sorting), in this order.
TASKS = ("arithmetic", "word_sorting")
PRESET = "small"
CHUNK = 400  # gold examples per training chunk
CURVE = (400, 800, 1600, 3200)  # gold examples at which the checkpoint is evaluated
EVAL_N = 150  # held-out problems per subset (seen, unseen): 300 in all
COMPETENT = 0.30  # first-attempt accuracy that makes a checkpoint iteration 0
COMPARISON = "campaign"  # scripts/bench_learning.py's size for step 2
SEED = 0
ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# ------------------------------------------------------------------ helpers ---


def say(msg: str) -> None:
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}", flush=True)


def load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data, sort_keys=True)


def tripost(dirpath: Path, *args: str) -> None:
    """One `tripost` command of the pinned clone, its output appended to the log."""
    command([str(dirpath / "src" / ".venv" / "bin" / "tripost"), *args])


def command(cmd: list[str]) -> None:
    """One command of the pinned clone; a failure stops the campaign with one line."""
    say("$ " + " ".join(shlex.quote(a) for a in cmd))
    done = subprocess.run(cmd, env={**os.environ, **ENV}, stdout=sys.stdout, stderr=sys.stdout)
    if done.returncode != 0:
        raise SystemExit(f"campaign: stopped: `{' '.join(cmd[:3])} ...` exited {done.returncode}; rerun `campaign.py start` to resume")


# ----------------------------------------------------------------- start ---


def cmd_start(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    state = load(d / "campaign.json")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.commit], capture_output=True, text=True, check=True).stdout.strip()
    if args.advance:
        code = advance(d, state, commit)
        if code:
            return code
        state = load(d / "campaign.json")
    elif state and state["commit"] != commit and not args.commit_given:
        commit = state["commit"]  # resume at the recorded commit
    if state and state["commit"] != commit:
        print(f"campaign: {d} runs commit {state['commit'][:12]}; use another --dir for {commit[:12]}", file=sys.stderr)
        return 2
    if not state and d.exists() and any(d.iterdir()):
        print(f"campaign: {d} exists but holds no campaign.json; choose an empty or new --dir", file=sys.stderr)
        return 2
    if state and args.from_docs and not state.get("from_docs"):
        print(f"campaign: {d} holds a whole campaign; --from-docs begins a new one in another --dir", file=sys.stderr)
        return 2
    if args.keep_published and not (args.from_docs and not state):
        print("campaign: --keep-published goes with --from-docs, for a new --dir (a resumed campaign keeps its mode)", file=sys.stderr)
        return 2
    args.from_docs = args.from_docs or bool(state and state.get("from_docs"))  # a resumed one keeps its mode
    docs = Path(args.docs) if args.docs else Path(state["docs"]) if state else ROOT / "docs" / "benchmarks"
    if args.from_docs:
        for task in TASKS:
            try:
                committed_comparison(docs, task)
            except SystemExit as e:
                print(e, file=sys.stderr)
                return 2
    d.mkdir(parents=True, exist_ok=True)
    src = d / "src"
    if not (src / ".git").exists():
        say(f"cloning {ROOT} at {commit[:12]} into {src}")
        subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(src)], check=True)
        subprocess.run(["git", "-C", str(src), "checkout", "--quiet", commit], check=True)
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    if head != commit:
        print(f"campaign: {src} is at {head[:12]}, not {commit[:12]}; remove {d} to start over", file=sys.stderr)
        return 2
    subprocess.run(["bash", str(src / "scripts" / "setup.sh")], check=True)
    if not state:
        state = {"commit": commit, "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "docs": str(docs),
                 **({"from_docs": True} if args.from_docs else {}), **({"keep_published": True} if args.keep_published else {})}
        write_json(d / "campaign.json", state)
    log = open(d / "campaign.log", "a")
    worker = subprocess.Popen([str(src / ".venv" / "bin" / "python"), str(src / "scripts" / "campaign.py"), "run", "--dir", str(d)],
                              stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **ENV}, start_new_session=True)
    (d / "worker.pid").write_text(f"{worker.pid}\n")
    print(f"campaign: running at {commit[:12]} (pid {worker.pid}); follow it with: tail -f {d / 'campaign.log'}")
    return 0


def worker_alive(d: Path) -> bool:
    pid = (d / "worker.pid").read_text().strip() if (d / "worker.pid").exists() else ""
    return bool(pid) and Path(f"/proc/{pid}").exists()


def stage_commit(state: dict[str, Any], name: str) -> str | None:
    """The commit a finished stage was made at: the pin of the last `history` entry
    it had not finished before (`advance` moves the pin only between stages)."""
    history = state.get("history") or [{"commit": state.get("commit")}]
    for entry, later in zip(history, history[1:]):
        if name in later.get("stages_done_before", []):
            return entry["commit"]
    return history[-1]["commit"]


def advance(d: Path, state: dict[str, Any] | None, commit: str) -> int:
    """Move a stopped campaign's pinned clone to `commit`, a descendant of the
    recorded one, keeping what has finished (its results name the commit they
    were made at: campaign.json `history`)."""
    if not state:
        print(f"campaign: {d} holds no campaign to advance; `start` without --advance begins one", file=sys.stderr)
        return 2
    if worker_alive(d):
        print(f"campaign: the worker in {d} is still running; wait for it to finish a stage and stop it first", file=sys.stderr)
        return 2
    if state["commit"] == commit:
        return 0
    ancestor = subprocess.run(["git", "-C", str(ROOT), "merge-base", "--is-ancestor", state["commit"], commit]).returncode == 0
    if not ancestor:
        print(f"campaign: {commit[:12]} does not descend from the campaign's {state['commit'][:12]}; use a new --dir", file=sys.stderr)
        return 2
    src = d / "src"
    subprocess.run(["git", "-C", str(src), "fetch", "--quiet", str(ROOT), commit], check=True)
    subprocess.run(["git", "-C", str(src), "checkout", "--quiet", commit], check=True)
    done = [s["name"] for s in stages(d) if s["done"]]
    history = state.get("history") or [{"commit": state["commit"], "since": state["started"]}]
    history.append({"commit": commit, "since": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "stages_done_before": done})
    write_json(d / "campaign.json", {**state, "commit": commit, "history": history})
    say(f"advanced {d} from {state['commit'][:12]} to {commit[:12]}; {len(done)} finished stages kept")
    return 0


# ----------------------------------------------------------------- measure ---


def measure(d: Path) -> dict[str, Any]:
    """The machine card, and the real student's training and sampling rates
    on a small sample of this campaign's own work (a few minutes)."""
    out = load(d / "measure.json")
    if out:
        return out
    from tripost.buffer import rationale_examples, to_dataset
    from tripost.student import SamplingParams, build_prompt, load_student
    from tripost.student.hardware import describe_card, machine_card
    from tripost.tasks import get_task, sample_problems
    from tripost.train import TrainConfig, train_sft

    card = machine_card()
    say(describe_card(card).replace("\n", "; "))
    problems = sample_problems(get_task(TASKS[0]), split="train", subset="seen", preset=PRESET, n=48, seed=SEED + 1)
    t0 = time.perf_counter()
    res = train_sft(TrainConfig(epochs=1.0, batch_size=8, save_steps=10_000, logging_steps=100, progress=False, seed=SEED),
                    to_dataset(rationale_examples(problems)), d / "measure" / "train")
    train_rate = res.tokens / max(res.seconds, 1e-9)
    student = load_student("smollm2-135m")
    prompts = [build_prompt(student.tokenizer, p.question) for p in problems[:32]]
    t1 = time.perf_counter()
    gens = student.sample(prompts, SamplingParams(n=1, temperature=0.0, max_new_tokens=160))
    sample_rate = sum(g.n_tokens for r in gens for g in r) / (time.perf_counter() - t1)
    tokens_per_example = res.tokens / len(problems)
    out = {"machine": card, "train_tokens_per_s": round(train_rate, 1), "sample_tokens_per_s": round(sample_rate, 1),
           "train_tokens_per_example": round(tokens_per_example, 1), "seconds": round(time.perf_counter() - t0, 1)}
    write_json(d / "measure.json", out)
    return out


# -------------------------------------------------------------- competence ---


def chunk_dir(d: Path, k: int, task: str = TASKS[0]) -> Path:
    # The first task keeps the layout of the campaign that began with it alone.
    return (d / "competence" if task == TASKS[0] else d / "competence" / task) / f"gold{k * CHUNK}"


def competence_stages(d: Path, task: str = TASKS[0]) -> list[dict[str, Any]]:
    chunks = max(CURVE) // CHUNK
    stages = []
    for k in range(1, chunks + 1):
        stages.append({"name": f"competence/{task} train {k * CHUNK} gold", "kind": "train", "task": task, "k": k,
                       "done": StageFolder(chunk_dir(d, k, task)).train_metrics.exists()})
        if k * CHUNK in CURVE:
            stages.append({"name": f"competence/{task} eval at {k * CHUNK} gold", "kind": "eval", "task": task, "k": k,
                           "done": (chunk_dir(d, k, task) / "eval.json").exists()})
    return stages


def run_competence_stage(d: Path, stage: dict[str, Any], docs: Path) -> None:
    from tripost.buffer import BufferStats, rationale_examples, save_buffer
    from tripost.tasks import get_task, sample_problems

    k, task = stage["k"], stage.get("task", TASKS[0])
    folder = chunk_dir(d, k, task)
    chunk = StageFolder(folder)  # buffer/ and train/ as in a run's iteration folder; eval.json beside them
    if stage["kind"] == "train":
        if not chunk.buffer_dataset.exists():
            # Chunk k: problems (k-1)*CHUNK .. k*CHUNK of one fixed draw (prefix-stable), never seen before.
            pool = sample_problems(get_task(task), split="train", subset="seen", preset=PRESET, n=max(CURVE), seed=SEED)
            examples = rationale_examples(pool[(k - 1) * CHUNK: k * CHUNK])
            save_buffer(examples, BufferStats(records=len(examples)), chunk.buffer)
        previous = [] if k == 1 else ["--adapter", str(StageFolder(chunk_dir(d, k - 1, task)).train)]
        tripost(d, "train", "--buffer", str(chunk.buffer), "--out", str(chunk.train), *previous,
                "epochs=1", f"seed={SEED}", "progress=false")
    else:
        tripost(d, "eval", "--adapter", str(chunk.train), "--task", task, "--subset", "both", "--n", str(EVAL_N),
                "--max-turns", "0", "--seed", str(SEED), "--no-progress", "--out", str(folder / "eval.json"))
        publish(d, docs)


# -------------------------------------------------------------- comparison ---


def comparison_dir(d: Path, task: str) -> Path:
    return d / "comparison" / task


def comparison_stage(d: Path, task: str) -> dict[str, Any]:
    return {"name": f"comparison/{task}", "kind": "comparison", "task": task, "done": (comparison_dir(d, task) / "done.json").exists()}


def stages(d: Path) -> list[dict[str, Any]]:
    """Every stage in order: each task's competence curve, its comparison and
    its BIG-bench transfer; then each task's label-free methods (step 4).
    A --from-docs campaign: each task's rebuilt iteration 0 and controls,
    then its label-free methods."""
    if from_docs(d):
        docs = Path(load(d / "campaign.json")["docs"])
        methods = [label_free_stage(d, task, m) for task in TASKS for m in LABEL_FREE] + repeat_stages(d)
        if not keeps_published(d):
            return [s for task in TASKS for s in restore_stages(d, docs, task) + [m for m in methods if m["task"] == task and m["seed"] == SEED]] \
                + [m for m in methods if m["seed"] != SEED]
        # --keep-published: a run whose rows docs already holds counts as done, kept as published;
        # a task's iteration 0 and controls come just before its first run not kept, or not at all.
        published = {(r["task"], r["method"], r.get("seed", SEED)) for r in (load(docs / "self-improve.json") or {}).get("rows", [])}
        # A second seed is read against its first seed's per-problem outcomes: where the kept first
        # seed has none committed (published before OUTCOMES existed), it runs again here, next to it.
        unpaired = published - {(o["task"], o["method"], o["seed"]) for o in (load(docs / OUTCOMES) or {}).get("runs", [])}
        again = {(m["task"], m["method"]) for m in methods
                 if m["seed"] != SEED and (m["task"], m["method"], m["seed"]) not in published and (m["task"], m["method"], SEED) in unpaired}
        kept = published - {(task, method, SEED) for task, method in again}
        first = {(m["task"], m["method"]): m for m in methods if m["seed"] == SEED}
        order: list[dict[str, Any]] = []
        for m in methods:
            if (m["task"], m["method"]) in again:
                if m["seed"] == SEED:
                    continue  # it runs just before its second seed
                order.append(first[m["task"], m["method"]])
            order.append(m)
        # One task at a time, so that a folder rebuilds a task's iteration 0 once: the task whose
        # rebuild this folder has begun first, then each in the order of its first run not kept.
        tasks = list(dict.fromkeys(m["task"] for m in order))
        began = {t for t in tasks if any(s["done"] for s in restore_stages(d, docs, t))}
        pending = [m["task"] for m in order if (m["task"], m["method"], m["seed"]) not in kept]
        rank = {t: (t not in began, pending.index(t) if t in pending else len(order)) for t in tasks}
        order.sort(key=lambda m: rank[m["task"]])
        out: list[dict[str, Any]] = []
        for m in order:
            if not m["done"] and (m["task"], m["method"], m["seed"]) in kept:
                m = {**m, "done": True, "kept": True}
            if not m.get("kept") and not any(s["task"] == m["task"] and s["kind"] == "controls" for s in out):
                out += restore_stages(d, docs, m["task"])
            out.append(m)
        return out
    return ([s for task in TASKS for s in competence_stages(d, task) + [comparison_stage(d, task), transfer_stage(d, task)]]
            + [label_free_stage(d, task, m) for task in TASKS for m in LABEL_FREE] + repeat_stages(d))


# --------------------------------------------------------------- transfer ---

# Step 5: each task's students on the BIG-Bench-Hard file of its family, and
# the new tokens that leaves room for: the file's longest gold rationale in
# the student's tokens is 189 (multistep_arithmetic_two; median 174) and
# 1,374 (word_sorting: 2 to 20 words; median 551), where the small preset's
# problems the students learnt from take at most 146 and 273.
TRANSFER = {"arithmetic": ("multistep_arithmetic_two", 256), "word_sorting": ("word_sorting", 1536)}
TRANSFER_N = 250  # every example of a BBH file


def transfer_dir(d: Path, task: str) -> Path:
    return d / "transfer" / task


def bigbench_file(d: Path, task: str) -> Path:
    """Where the campaign looks for the BBH file of `task`'s family."""
    return d / "bigbench" / f"{TRANSFER[task][0]}.json"


def transfer_stage(d: Path, task: str) -> dict[str, Any]:
    src = bigbench_file(d, task)
    return {"name": f"transfer/{task} BIG-bench", "kind": "transfer", "task": task, "done": (transfer_dir(d, task) / "done.json").exists(),
            "blocked": None if src.exists() else f"needs {src} (BIG-Bench-Hard's bbh/{src.name})"}


def transfer_students(docs: Path, task: str) -> list[dict[str, Any]]:
    """The students of a finished comparison (bench_learning's methods at the
    chosen iterations), each with the folder of its model (None: the base)."""
    bl = bench_learning()
    comp = load(docs / f"learning-{task}.json")
    if not comp or comp["meta"].get("partial"):
        raise SystemExit(f"campaign: stopped: the BIG-bench transfer of {task} needs its finished comparison (learning-{task}.json)")
    runs, T, sel = comp["meta"]["runs"][str(SEED)], comp["meta"]["size"]["iterations"], comp["selection"][0]
    tri, rej, demo, gp = (Path(runs[k]) for k in ("tripost", "rejection", "tripost-demo", "sft-gold+"))
    ms = bl.methods(tri, rej, gp, T, demo=demo, chosen=sel, it0_tokens=(comp["meta"].get("iteration0") or {}).get("tokens"))
    model = {"base": None, "sft-gold": RunLayout(tri).it(0).train, "sft-gold+": StageFolder(gp).train,
             "rejection": RunLayout(rej).it(sel["rejection"]["iteration"]).train, "tripost-demo": RunLayout(demo).it(1).train,
             f"tripost-t{sel['tripost']['iteration']}": RunLayout(tri).it(sel["tripost"]["iteration"]).train}
    return [{**m, "model": model[m["method"]]} for m in ms if m["method"] in model]


def run_transfer_stage(d: Path, stage: dict[str, Any], docs: Path) -> None:
    task = stage["task"]
    name, max_new = TRANSFER[task]
    folder = transfer_dir(d, task)
    data = folder / f"{name}.jsonl"
    if not data.exists():
        tripost(d, "tasks", "import", str(bigbench_file(d, task)), "--task", task, "--out", str(data))
    for m in transfer_students(docs, task):
        out = folder / m["method"] / "eval.json"
        if out.exists():
            continue
        student = ["--student", "smollm2-135m"] if m["model"] is None else ["--adapter", str(m["model"])]
        tripost(d, "eval", *student, "--task", task, "--data", str(data), "--split", "test", "--subset", "seen", "--n", str(TRANSFER_N),
                "--max-turns", str(bench_learning().SIZES[COMPARISON]["max_turns"]), "--max-new-tokens", str(max_new),
                "--seed", str(SEED), "--no-progress", "--out", str(out))
        publish_transfer(d, docs)
    write_json(folder / "done.json", {"finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                      "commit": (load(d / "campaign.json") or {}).get("commit")})
    publish_transfer(d, docs)


def publish_transfer(d: Path, docs: Path) -> None:
    """docs/benchmarks/bigbench.{json,md}: every transfer evaluation finished
    so far, with bench_learning's columns (paired intervals against
    sft-gold+ over the same BBH examples) and accuracy by difficulty."""
    bl = bench_learning()
    rows: list[dict[str, Any]] = []
    by_difficulty: list[dict[str, Any]] = []
    for task in TASKS:
        if not (transfer_dir(d, task) / f"{TRANSFER[task][0]}.jsonl").exists():
            continue
        ms = [{**m, "eval": transfer_dir(d, task) / m["method"] / "eval.json"} for m in transfer_students(docs, task)]
        ms = [m for m in ms if m["eval"].exists()]
        rows += [{**r, "bigbench_task": TRANSFER[task][0]} for r in bl.rows_of(ms, seed=SEED) if r["task"] != "total"]
        for m in ms:
            groups = (load(m["eval"]) or {}).get("metrics", {}).get("total", {}).get("by_difficulty") or []
            by_difficulty += [{"task": task, "method": m["method"], **g} for g in sorted(groups, key=lambda g: difficulty_sort_key(str(g["difficulty"])))]
    if not rows:
        return
    write_json(docs / "bigbench.json", {
        "meta": {"campaign": "issue 28, step 5 (real-world transfer)", "files": {t: f"BIG-Bench-Hard bbh/{f}.json" for t, (f, _) in TRANSFER.items()},
                 "max_new_tokens": {t: n for t, (_, n) in TRANSFER.items()}, "max_turns": bench_learning().SIZES[COMPARISON]["max_turns"],
                 "seeds": [SEED], "machine": (load(d / "measure.json") or {}).get("machine"),
                 "command": f"python3 scripts/campaign.py start --dir {d}   # the transfer stages",
                 "updated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
        "rows": rows, "by_difficulty": by_difficulty})
    lines = ["# BIG-bench transfer of the campaign's students (issue 28, step 5)", "",
             "Each task's students (the comparison's iteration 0 = sft-gold, sft-gold+, TriPosT's chosen iteration, tripost-demo, "
             "rejection, and the base model) on every example of the BIG-Bench-Hard file of the same family "
             "(github.com/suzgunmirac/BIG-Bench-Hard, `bbh/TASK.json`, converted by `tripost tasks import`), evaluated as the comparison "
             "evaluates (greedy attempt + 2 self-improvement turns), with room for the file's longest gold rationale "
             f"({', '.join(f'{t}: {n} new tokens' for t, (_, n) in TRANSFER.items())}). The students learnt from the small preset "
             "only; the task generators were not changed to fit BIG-bench. Accuracy in % (95% Wilson); *vs sft-gold+*: the paired 95% "
             "bootstrap interval of the final-accuracy difference over the same examples.", "",
             "| task (BBH file) | method | n | first | final | vs sft-gold+ | fix | break | revised |", "|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        if r["subset"] != "total":  # every BBH example is a `seen` row: the total says it once
            continue
        lines.append(f"| {r['task']} ({r['bigbench_task']}) | {r['method']} | {r['n']} | {percent(r['first_acc'])} | {percent(r['final_acc'])} | "
                     f"{interval(r.get('paired_ci_vs_sft_gold_plus'))} | {percent(r.get('fix_rate'))} | {percent(r.get('break_rate'))} | {percent(r.get('revised_rate'))} |")
    lines += ["", "By difficulty (the family's label of each example: arithmetic `lenL-D`, D groups of L numbers, where the small preset "
              "the students learnt from has len3-1 and len2-2 (seen) and len3-2 (unseen); word_sorting the number of words, where it "
              "has 2-3 (seen) and 4-5 (unseen)), first / final accuracy:", "", "| task | method | difficulty | n | first | final |", "|---|---|---|---:|---:|---:|"]
    lines += [f"| {g['task']} | {g['method']} | {g['difficulty']} | {g['n']} | {percent(g['first_accuracy'])} | {percent(g['final_accuracy'])} |"
              for g in by_difficulty]
    atomic_write_page(docs / "bigbench.md", "\n".join(lines) + "\n")  # a hand-written "## Reading" below the tables is kept


# ------------------------------------------------------------ from docs ---


def from_docs(d: Path) -> bool:
    """A campaign begun with `start --from-docs`: step 4 alone, on rebuilt prerequisites."""
    return bool((load(d / "campaign.json") or {}).get("from_docs"))


def keeps_published(d: Path) -> bool:
    """A --from-docs campaign begun with --keep-published: it runs only the label-free runs docs has no rows of."""
    return bool((load(d / "campaign.json") or {}).get("keep_published"))


def committed_comparison(docs: Path, task: str) -> dict[str, Any]:
    comp = load(docs / f"learning-{task}.json")
    if not comp or comp["meta"].get("partial") or not (comp["meta"].get("iteration0") or {}).get("problems"):
        raise SystemExit(f"campaign: stopped: --from-docs needs {task}'s finished comparison, from an iteration 0 of the "
                         f"competence chain, in {docs / f'learning-{task}.json'}")
    return comp


def committed_tripost_tokens(comp: dict[str, Any]) -> list[int]:
    """TriPosT's training tokens in each iteration 1..T, read off a committed
    comparison's rows (each tripost-tK row counts iteration 0 and iterations 1..K)."""
    T, it0 = comp["meta"]["size"]["iterations"], int(comp["meta"]["iteration0"]["tokens"])
    upto = {r["iteration"]: int(r["train_tokens"]) for r in comp["rows"]
            if r["method"] == f"tripost-t{r['iteration']}" and r["subset"] == "total" and r.get("seed", SEED) == SEED}
    if any(t not in upto for t in range(1, T + 1)):
        raise SystemExit(f"campaign: stopped: the committed comparison has no rows of TriPosT's iterations 1..{T}")
    return [upto[t] - (upto[t - 1] if t > 1 else it0) for t in range(1, T + 1)]


def restore_stages(d: Path, docs: Path, task: str) -> list[dict[str, Any]]:
    """The competence chain up to the committed iteration 0, its evaluation, its controls."""
    k0 = int(committed_comparison(docs, task)["meta"]["iteration0"]["problems"]) // CHUNK
    chain = [s for s in competence_stages(d, task) if s["k"] <= k0 and (s["kind"] == "train" or s["k"] == k0)]
    return chain + [{"name": f"controls/{task} sft-gold, sft-gold+", "kind": "controls", "task": task,
                     "done": (comparison_dir(d, task) / "restored.json").exists()}]


def restored_runs(d: Path, task: str) -> dict[str, Path]:
    """The run folders of a --from-docs campaign's controls, by method (bench_learning's layout)."""
    return bench_learning().run_folders(comparison_dir(d, task) / "runs")


def controls_overrides(task: str) -> list[str]:
    """The comparison's TriPosT run with no iteration after iteration 0: iteration 0 evaluated as the comparison evaluates."""
    bl = bench_learning()
    return bl.base_overrides(bl.SIZES[COMPARISON], "auto", SEED, "smollm2-135m", [task]) + ["loop.iterations=0", "student.eval_base=false"]


def run_controls_stage(d: Path, stage: dict[str, Any], docs: Path) -> None:
    task = stage["task"]
    comp = committed_comparison(docs, task)
    folder, gold = comparison_dir(d, task), int(comp["meta"]["iteration0"]["problems"])
    adapter, tokens = StageFolder(chunk_dir(d, gold // CHUNK, task)).train, chain_tokens(d, gold, task)
    write_json(folder / "iteration0.json", {"adapter": str(adapter), "gold_examples": gold, "problems": gold, "tokens": tokens})
    # One commit, one iteration 0: every run of step 4 takes today's defaults (comparison_pins reads this).
    write_json(folder / "pins.json", {"pins": [], "why": "--from-docs: the controls and the methods run at one commit"})
    tri = restored_runs(d, task)["tripost"]
    bench_learning().link_folder(adapter, RunLayout(tri).it(0).train)
    tripost(d, "run", "--out", str(tri), "--no-progress", *controls_overrides(task))
    command([str(d / "src" / ".venv" / "bin" / "python"), str(d / "src" / "scripts" / "campaign.py"), "gold-plus", "--dir", str(d), "--task", task])
    curve_then = next((r for r in (load(docs / "learning.json") or {}).get("sft_gold_curve", [])
                       if r["task"] == task and r["gold_examples"] == gold), {})
    rebuilt = curve_point(load(chunk_dir(d, gold // CHUNK, task) / "eval.json"), gold, task, adapter)
    write_json(folder / "restored.json", {
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": (load(d / "campaign.json") or {}).get("commit"),
        "iteration0": {"gold_examples": gold, "tokens": tokens, "committed_tokens": comp["meta"]["iteration0"]["tokens"],
                       "first_acc": rebuilt["first_acc"], "committed_first_acc": curve_then.get("first_acc"),
                       "seen": rebuilt["seen"], "committed_seen": curve_then.get("seen"),
                       "unseen": rebuilt["unseen"], "committed_unseen": curve_then.get("unseen")},
        "sft_gold_plus_target_tokens": sum(committed_tripost_tokens(comp))})
    say(f"{task}: iteration 0 rebuilt: first attempt {100 * rebuilt['first_acc']:.1f}% "
        f"(committed {100 * (curve_then.get('first_acc') or 0):.1f}%), {tokens} tokens "
        f"(committed {comp['meta']['iteration0']['tokens']})")


def cmd_gold_plus(args: argparse.Namespace) -> int:
    """The controls stage's sft-gold+ (bench_learning.gold_plus, in the pinned
    clone): the rebuilt iteration 0 trained further on fresh gold to the
    committed TriPosT tokens, evaluated as the comparison evaluates."""
    from tripost.loop import Run
    from tripost.runconfig import RunConfig

    d = Path(args.dir)
    state = load(d / "campaign.json")
    if not state:
        print(f"campaign: {d} holds no campaign (its gold-plus is a stage of `campaign.py start --from-docs`)", file=sys.stderr)
        return 2
    comp = committed_comparison(Path(state["docs"]), args.task)
    runs = restored_runs(d, args.task)
    run = Run(runs["tripost"], RunConfig.load(None, controls_overrides(args.task)), progress=False)
    bench_learning().gold_plus(run, runs["sft-gold+"], sum(committed_tripost_tokens(comp)), say,
                               skip=int(comp["meta"]["iteration0"]["problems"]))
    return 0


# ------------------------------------------------------------- label-free ---

# Step 4: the label-free self-improvement methods, each a `tripost run` from
# the comparison's iteration 0 (linked) on the same problems and evaluation,
# every iteration trained at TriPosT's mean tokens per iteration
# (train.token_budget). They sample 4 attempts a problem where TriPosT samples
# 1: a best-of-N, a verifier's filter and GSI's rounds need several.
LABEL_FREE: dict[str, list[str]] = {
    "sharpen": ["collect.source=sharpen"],  # SFT-sharpening (Huang et al. 2024)
    # RLHF-sharpening. Its learning rate: TRL's 1e-6 (tripost's full fine-tuning
    # default) barely moved the student in the budget's ~50 steps (reward margin
    # 0.0066 after 35). Probed on iteration 1's own pairs (no val or test data),
    # 10 steps at a constant rate: 1e-5 reached a margin of 0.064 with the
    # chosen side's log-probability steady (-1.0 to -1.4); 5e-5 reached 0.32
    # but the chosen side fell from -1.1 to -2.5 (DPO's likelihood displacement).
    "sharpen-dpo": ["collect.source=sharpen", "train.objective=dpo", "train.dpo_learning_rate=1e-5"],
    "self-verified-filter": ["collect.source=self_verified", "collect.verify_mode=filter"],  # Song et al. 2024
    "self-verified-reweight": ["collect.source=self_verified", "collect.verify_mode=reweight", "train.use_example_weight=true"],
    "guided": ["collect.source=guided"],  # Guided Self-Improvement (Ding et al. 2024)
    # GSI's own baseline, vanilla self-improvement: its plain round alone, every
    # right sample trained and no guided round (min_correct_num=0, max_resample_num=0 in
    # the authors' scripts/llama3/cot_train_iter_original.sh). The same source and buffer
    # rules as guided, so the two differ only in the guidance; guided's 118 verbatim
    # copies of the gold rationale among 158 hinted right samples (arithmetic, iteration
    # 1) made the question which of the two its result comes from.
    "guided-vanilla": ["collect.source=guided", "collect.guided_rounds=0"],
    # GSI's brute-force baseline, more plain rounds in place of guided ones (the authors'
    # scripts/llama3/cot_train_uniform.sh, lines 19-21: no guidance, up to 128 resamples where
    # guided gets 8). Here at guided's 8 rounds, the same samples on the same unsolved problems:
    # guided beat vanilla on arithmetic (+5.5 points), and vanilla draws fewer samples, so this
    # tells the guidance from the extra sampling of the tail.
    "guided-resample": ["collect.source=guided", "collect.guided_strategy=resample"],
}
LABEL_FREE_SAMPLES = 4

# A second training seed of some methods, after every task's methods have run:
# each method is one seed, and the paired intervals between methods resample the
# test problems only, so how far a run moves with its seed alone (what it draws,
# the order it trains in; iteration 0 is the same) is what tells a difference
# between methods from training noise. sharpen is the first baseline, guided
# the one that did not lose, and the reweight the run that moved by 7.5 points
# when only its buffer's dedupe changed (self-improve.md's Reading). word_sorting's
# two come first: its iteration 0 costs 16 min to rebuild where arithmetic's costs
# about an hour, and its seed-0 runs are in the folder of the campaign begun
# --keep-published after the machine came back without the earlier one.
LABEL_FREE_REPEATS: dict[str, tuple[str, ...]] = {"word_sorting": ("self-verified-reweight", "guided"),
                                                  "arithmetic": ("sharpen", "self-verified-reweight", "guided")}
REPEAT_SEED = 1


def label_free_dir(d: Path, task: str, method: str, seed: int = SEED) -> Path:
    return d / "selfimprove" / task / (method if seed == SEED else f"{method}-seed{seed}")


def label_free_stage(d: Path, task: str, method: str, seed: int = SEED) -> dict[str, Any]:
    return {"name": f"label-free/{task} {method}" + ("" if seed == SEED else f" seed {seed}"), "kind": "label-free", "task": task,
            "method": method, "seed": seed, "done": (label_free_dir(d, task, method, seed) / "report.md").exists()}


def repeat_stages(d: Path) -> list[dict[str, Any]]:
    return [label_free_stage(d, task, m, REPEAT_SEED) for task, ms in LABEL_FREE_REPEATS.items() for m in ms]


def label_free_overrides(task: str, method: str, budget: int, seed: int = SEED) -> list[str]:
    """The run config of one label-free method: the comparison's sizes and
    evaluation (bench_learning's campaign size), its source, the budget."""
    bl = bench_learning()
    return (bl.base_overrides(bl.SIZES[COMPARISON], "auto", seed, "smollm2-135m", [task])
            + ["student.eval_base=false", "eval.every_iteration=false", f"collect.samples_per_problem={LABEL_FREE_SAMPLES}",
               f"train.token_budget={budget}"] + LABEL_FREE[method])


def label_free_run_overrides(folder: Path, task: str, method: str, budget: int, pins: list[str], seed: int = SEED) -> list[str]:
    """The overrides of one label-free run: its method's, its comparison's
    pins, and, for a run already begun, its own recorded values wherever
    they differ from those (a default or a method's overrides changed by a
    later `start --advance`): a run goes on with the config it began with."""
    from tripost.loop import resume_overrides
    from tripost.runconfig import RunConfig

    overrides = label_free_overrides(task, method, budget, seed) + pins
    recorded = load(RunLayout(folder).config)
    return overrides + (resume_overrides(recorded, RunConfig.load(None, overrides).to_dict()) if recorded else [])


def comparison_runs(d: Path, task: str, comp: dict[str, Any]) -> dict[str, Path]:
    """The comparison's run folders by method: its own, or a --from-docs campaign's rebuilt controls."""
    return restored_runs(d, task) if from_docs(d) else {k: Path(v) for k, v in comp["meta"]["runs"][str(SEED)].items()}


def tripost_tokens_per_iteration(tri: Path, T: int) -> int:
    """TriPosT's mean training tokens per iteration in a comparison run folder."""
    tokens = [int((load(RunLayout(tri).it(t).train_metrics) or {}).get("tokens") or 0) for t in range(1, T + 1)]
    if not all(tokens):
        raise SystemExit(f"campaign: stopped: TriPosT's iterations in {tri} have no training tokens recorded")
    return round(sum(tokens) / len(tokens))


def run_label_free_stage(d: Path, stage: dict[str, Any], docs: Path) -> None:
    task, method, seed = stage["task"], stage["method"], stage.get("seed", SEED)
    comp = load(docs / f"learning-{task}.json")
    ready = comparison_dir(d, task) / ("restored.json" if from_docs(d) else "done.json")
    if not comp or not ready.exists():
        raise SystemExit(f"campaign: stopped: the label-free methods on {task} need its finished comparison"
                         + (" and its rebuilt controls" if from_docs(d) else ""))
    tri, T = comparison_runs(d, task, comp)["tripost"], comp["meta"]["size"]["iterations"]
    budget = round(sum(committed_tripost_tokens(comp)) / T) if from_docs(d) else tripost_tokens_per_iteration(tri, T)
    folder = label_free_dir(d, task, method, seed)
    folder.mkdir(parents=True, exist_ok=True)
    bench_learning().link_folder(RunLayout(tri).it(0).root, RunLayout(folder).it(0).root)  # the same iteration 0
    # The comparison's own settings where a default changed since it ran (comparison_pins): the
    # methods are read against its sft-gold+ on the same problems, evaluated the same way.
    pins = comparison_pins(comparison_dir(d, task), comparison_args(d, task, docs))
    overrides = label_free_run_overrides(folder, task, method, budget, pins, seed)
    shared = shared_collection(d, task, method, overrides, seed)
    if shared is not None:
        say(f"{task} {method}: iteration 1 collects what {shared.parent.parent.name} collected: linked, not drawn again")
        bench_learning().link_folder(shared, RunLayout(folder).it(1).collect)
    tripost(d, "run", "--out", str(folder), "--no-progress", *overrides)
    publish_label_free(d, docs)


def shared_collection(d: Path, task: str, method: str, overrides: list[str], seed: int = SEED) -> Path | None:
    """An earlier label-free run's finished iteration-1 collection that `method`
    would draw again sample for sample: same iteration 0 (every method links the
    comparison's), and a config that differs only in how it trains. RLHF-sharpening
    samples, scores and picks exactly what SFT-sharpening does (its pairs are the
    pick and the lowest-rated sample, which sharpen's records carry too); only
    the objective differs. On arithmetic the two logs were the same records
    (config hash aside), drawn in 9.8 and 17.6 min. Later iterations start from
    different students, so only iteration 1 is shared."""
    from tripost.runconfig import RunConfig

    if RunLayout(label_free_dir(d, task, method, seed)).it(1).collect.exists():
        return None  # begun already: it goes on with its own
    collects = lambda cfg: {k: v for k, v in cfg.items() if k != "train"}  # noqa: E731  what the collection reads
    mine = collects(RunConfig.load(None, overrides).to_dict())
    for other in list(LABEL_FREE)[: list(LABEL_FREE).index(method)]:  # the stages before this one
        layout = RunLayout(label_free_dir(d, task, other, seed))
        recorded = load(layout.config)
        if recorded is not None and layout.it(1).collect_json.exists() and collects(recorded) == mine:
            return layout.it(1).collect
    return None


def publish_label_free(d: Path, docs: Path) -> None:
    """docs/benchmarks/self-improve.{json,md}: each finished label-free method
    beside sft-gold and sft-gold+ of the same comparison, with bench_learning's
    columns (paired intervals against sft-gold+ over the same problems)."""
    bl = bench_learning()
    rows: list[dict[str, Any]] = []
    records: dict[int, dict[str, dict[str, list[dict[str, Any]]]]] = {}  # seed -> task -> method -> its final evaluation's per-problem records
    outcomes: list[dict[str, Any]] = []  # each run's per-problem outcomes, committed (OUTCOMES)
    for task in TASKS:
        comp = load(docs / f"learning-{task}.json")
        if not comp or comp["meta"].get("partial"):
            continue
        runs, T = comparison_runs(d, task, comp), comp["meta"]["size"]["iterations"]
        tri, gp = runs["tripost"], runs["sft-gold+"]
        it0_tokens = int((load(comparison_dir(d, task) / "restored.json") or {}).get("iteration0", {}).get("tokens") or 0) if from_docs(d) \
            else int((comp["meta"].get("iteration0") or {}).get("tokens") or 0)
        base = [m for m in bl.methods(tri, runs["rejection"], gp, T, demo=None, it0_tokens=it0_tokens or None)
                if m["method"] in ("sft-gold", "sft-gold+")]

        def finished(method: str, seed: int) -> dict[str, Any] | None:
            folder = label_free_dir(d, task, method, seed)
            if not RunLayout(folder).it(T).eval_json.exists():
                return None
            return {"method": method, "iteration": T, "chosen": True, "eval": RunLayout(folder).it(T).eval_json,
                    "train_tokens": it0_tokens + sum(bl.iteration_tokens(RunLayout(folder).it(t)) for t in range(1, T + 1)),
                    "buffer_by_kind": bl.buffer_by_kind(folder, range(1, T + 1)), "seconds": 0.0}

        for seed, names in ((SEED, list(LABEL_FREE)), (REPEAT_SEED, list(LABEL_FREE_REPEATS.get(task, ())))):
            ms = [m for m in (finished(name, seed) for name in names) if m]
            if ms:
                # Against sft-gold too: does the method improve on the iteration 0 it started from?
                rows += [r for r in bl.rows_of(base + ms, seed=seed, also_vs=("sft-gold",))
                         if r["task"] != "total" and (seed == SEED or r["method"] in LABEL_FREE)]
                mine = {m: r for m, r in bl.method_records(base + ms).items() if r}
                records.setdefault(seed, {})[task] = {m: r for m, r in mine.items() if m in LABEL_FREE}
                outcomes += [outcome_entry(task, m, seed, r) for m, r in mine.items() if seed == SEED or m in LABEL_FREE]
    state = load(d / "campaign.json") or {}
    # Each row names the commit its run was made at, not the pin at publish time (an advance moves the pin).
    controls = {t: stage_commit(state, (restore_stages(d, docs, t)[-1] if from_docs(d) else comparison_stage(d, t))["name"])
                for t in {r["task"] for r in rows}}  # read once a task, not once a row

    def made_at(r: dict[str, Any]) -> str | None:
        if r["method"] in LABEL_FREE:
            return stage_commit(state, label_free_stage(d, r["task"], r["method"], r.get("seed", SEED))["name"])
        return controls[r["task"]]

    rows = [{**r, "commit": made_at(r)} for r in rows]
    outcomes = [{**o, "commit": made_at(o), "folder": str(d)} for o in outcomes]
    restored = {t: load(comparison_dir(d, t) / "restored.json") for t in TASKS if (comparison_dir(d, t) / "restored.json").exists()}
    # What an earlier folder published and this one has not (a folder lost with its machine, its
    # step 4 begun again --from-docs) is kept as committed: each row names the commit it was made at.
    before = load(docs / "self-improve.json") or {}
    have = {(r["task"], r["method"], r.get("seed", SEED)) for r in rows}
    kept = [r for r in before.get("rows", []) if (r["task"], r["method"], r.get("seed", SEED)) not in have]
    if not rows:
        return
    # The kept runs' per-problem outcomes, as committed, so that this folder's runs are paired with them too.
    published = {(o["task"], o["method"], o["seed"]): o for o in (load(docs / OUTCOMES) or {}).get("runs", [])}
    ours = {(o["task"], o["method"], o["seed"]) for o in outcomes}
    from_kept = {(o["task"], o["method"], o["seed"]) for o in published.values() if (o["task"], o["method"], o["seed"]) not in ours}
    for key in sorted(from_kept):
        task, method, seed = key
        if method in LABEL_FREE:
            records.setdefault(seed, {}).setdefault(task, {})[method] = outcome_records(published[key])
    checks = {t: same_outcomes(published.get((t, "sft-gold", SEED)), next((o for o in outcomes if (o["task"], o["method"]) == (t, "sft-gold")), None))
              for t in TASKS}
    write_json(docs / OUTCOMES, {"about": "Each step-4 run's final evaluation, problem by problem (campaign.py publish_label_free): "
                                          "`problems` (id/subset) in the evaluation's order, `first` and `final` one character a problem "
                                          "(1: right). A later folder pairs its runs with these when this one is lost.",
                                 "runs": outcomes + [published[k] for k in sorted(from_kept)]})
    rows = sorted(rows + kept, key=lambda r: (task_rank(r["task"]), method_rank(r["method"]),
                                              r.get("seed", SEED),
                                              ["seen", "unseen", "total"].index(r["subset"]) if r["subset"] in ("seen", "unseen", "total") else 3))
    restored = {**{t: v for t, v in ((before.get("meta") or {}).get("restored") or {}).items() if t not in restored}, **restored}
    # Once written, the rebuilt outcomes replace the published ones: the check made then is carried on.
    checks = {**((before.get("meta") or {}).get("rebuild_checks") or {}), **{t: c for t, c in checks.items() if c}}
    pairs = [{**p, "across_folders": True} if {(p["task"], p["method"], SEED), (p["task"], p["minus"], SEED)} & from_kept else p
             for p in method_pairs(records.get(SEED, {}))]
    # A lost folder's pairs, as committed, where this folder has not both sides of the pair.
    pairs += [p for p in before.get("pairs", []) if (p["task"], p["method"], p["minus"]) not in {(q["task"], q["method"], q["minus"]) for q in pairs}]
    seed_pairs = [p for t, recs in records.get(REPEAT_SEED, {}).items() for p in seed_differences(t, records.get(SEED, {}).get(t, {}), recs)]
    seed_pairs += [p for p in before.get("seed_pairs", []) if (p["task"], p["method"]) not in {(q["task"], q["method"]) for q in seed_pairs}]
    how = f"python3 scripts/campaign.py start --dir {d}{' --from-docs' if from_docs(d) else ''}{' --keep-published' if keeps_published(d) else ''}   # at commit {str(state.get('commit'))[:12]}"
    write_json(docs / "self-improve.json", {"meta": {"campaign": "issue 28, step 4", "methods": LABEL_FREE, "samples": LABEL_FREE_SAMPLES,
                                                     "commit": state.get("commit"), "seeds": sorted({r.get("seed", SEED) for r in rows}),
                                                     "machine": (load(d / "measure.json") or {}).get("machine"), "command": how,
                                                     "restored": restored or None, "rebuild_checks": checks or None,
                                                     # each stage's minutes, this folder's over a lost one's (`status` reads them)
                                                     "stage_minutes": {**((before.get("meta") or {}).get("stage_minutes") or {}),
                                                                       **stage_minutes(d)},
                                                     "updated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, "rows": rows,
                                            "pairs": pairs, "seed_pairs": seed_pairs})
    lines = ["# Label-free self-improvement from the campaign's iteration 0 (issue 28, step 4)", "",
             "Each method is a `tripost run` from the comparison's iteration 0 (linked), on its problems and evaluation, every iteration "
             f"trained at TriPosT's mean tokens per iteration (`train.token_budget`), {LABEL_FREE_SAMPLES} samples a problem. Overrides: "
             + "; ".join(f"{m}: `{' '.join(o)}`" for m, o in LABEL_FREE.items()) + ". Each row is the method's last iteration "
             "(no iteration is chosen on validation: the methods are read against each other and the controls, which have none to choose). "
             "Accuracy in % (95% Wilson); *vs sft-gold+* and *vs sft-gold* (iteration 0, where every method starts): the "
             "paired 95% bootstrap interval of the final-accuracy difference over the same problems, in points.", "",
             f"Command: `{how}`.", ""]
    for t, r in restored.items():
        i0 = r["iteration0"]
        lines += [f"{t}: the campaign's folder was lost (a new machine), so iteration 0 and the controls were rebuilt at this commit "
                  f"(`--from-docs`): the competence chain to {i0['gold_examples']} gold examples again ({i0['tokens']} tokens; committed "
                  f"{i0['committed_tokens']}), first attempt {percent(i0['first_acc'])} (seen {percent(i0['seen'])}, unseen {percent(i0['unseen'])}) "
                  f"where the committed curve has {percent(i0['committed_first_acc'])} ({percent(i0['committed_seen'])}, {percent(i0['committed_unseen'])}); "
                  f"sft-gold+ trained to the committed TriPosT tokens ({r['sft_gold_plus_target_tokens']}). sft-gold and sft-gold+ below are "
                  "the rebuilt ones; TriPosT's rows (learning.md) come from the committed iteration 0.", ""]
        check = checks.get(t)
        if check:
            lines += [f"{t}: this rebuild's iteration 0 (sft-gold) answers the {check['n']} test problems as the published one (commit "
                      f"{check['commit'][:12]}) did on " + ("every one." if not check["differ"] else f"all but {check['differ']}."), ""]
    earlier = sorted({(r["task"], r["method"], str(r.get("commit"))[:12]) for r in kept})
    if earlier:
        lines += ["Kept as an earlier campaign folder published them (that folder is gone; its controls were rebuilt the same way): "
                  + "; ".join(f"{t} {m} (commit {c})" for t, m, c in earlier) + ".", ""]
    lines += ["| task | method | subset | n | first | final | vs sft-gold+ | vs sft-gold | fix | break | train tokens |",
              "|---|---|---|---:|---:|---:|---|---|---:|---:|---:|"]
    for r in rows:
        seed = "" if r.get("seed", SEED) == SEED else f" (seed {r['seed']})"
        lines.append(f"| {r['task']} | {r['method']}{seed} | {r['subset']} | {r['n']} | {percent(r['first_acc'])} | {percent(r['final_acc'])} | "
                     f"{interval(r.get('paired_ci_vs_sft_gold_plus'))} | {interval(r.get('paired_ci_vs_sft_gold'))} | "
                     f"{percent(r.get('fix_rate'))} | {percent(r.get('break_rate'))} | {r.get('train_tokens')} |")
    lines += pair_tables(pairs) + seed_table(seed_pairs)
    atomic_write_page(docs / "self-improve.md", "\n".join(lines) + "\n")  # a hand-written "## Reading" below the table is kept


def task_rank(task: str) -> int:
    """A task's place on the pages: TASKS' order, anything else (the pooled "total") after."""
    return TASKS.index(task) if task in TASKS else len(TASKS)


def method_rank(method: str) -> int:
    """A method's place on the pages: the controls, then LABEL_FREE's order."""
    order = ["sft-gold", "sft-gold+", *LABEL_FREE]
    return order.index(method) if method in order else len(order)


OUTCOMES = "self-improve-outcomes.json"  # beside self-improve.json: every run's per-problem outcomes


def outcome_entry(task: str, method: str, seed: int, records: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's final evaluation as committed: its problems and, one character each, first and final right (1) or wrong (0)."""
    bit = lambda v: "1" if v else "0"  # noqa: E731
    return {"task": task, "method": method, "seed": seed, "problems": [f"{r['problem_id']}/{r['subset']}" for r in records],
            "first": "".join(bit(r["first_correct"]) for r in records), "final": "".join(bit(r["final_correct"]) for r in records)}


def outcome_records(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """A committed outcome entry as the per-problem records bench_learning's paired intervals read."""
    out = []
    for key, first, final in zip(entry["problems"], entry["first"], entry["final"], strict=True):
        pid, subset = key.rsplit("/", 1)
        out.append({"problem_id": pid, "subset": subset, "family": entry["task"], "first_correct": first == "1", "final_correct": final == "1"})
    return out


def same_outcomes(before: dict[str, Any] | None, now: dict[str, Any] | None) -> dict[str, Any] | None:
    """A rebuilt run against the one an earlier folder published: on how many problems it answers otherwise
    (None where `before` is this folder's own, or names no folder, or was evaluated on other problems)."""
    if not before or not now or before.get("folder") in (None, now.get("folder")) or before["problems"] != now["problems"]:
        return None
    differ = sum(a != b for a, b in zip(zip(before["first"], before["final"]), zip(now["first"], now["final"])))
    return {"commit": str(before.get("commit")), "n": len(now["problems"]), "differ": differ}


def final_accuracy(records: list[dict[str, Any]]) -> float:
    """The share of an evaluation's per-problem records whose final answer is right."""
    return sum(r["final_correct"] for r in records) / len(records)


def method_pairs(records: dict[str, dict[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Each label-free method against each one LABEL_FREE lists before it, on the
    same problems: its final accuracy minus the other's (`diff`) with bench_learning's
    paired 95% interval; per task, and over both tasks pooled (task "total") for the
    methods finished on both, as the issue reads its targets."""
    bl = bench_learning()
    groups = dict(records)
    if all(t in groups for t in TASKS):
        groups["total"] = {m: [r for t in TASKS for r in groups[t][m]] for m in LABEL_FREE if all(m in groups[t] for t in TASKS)}
    out = []
    for task, recs in groups.items():
        names = [m for m in LABEL_FREE if recs.get(m)]
        for i, a in enumerate(names):
            for b in names[:i]:
                out.append({"task": task, "method": a, "minus": b, "n": len(recs[a]), "diff": final_accuracy(recs[a]) - final_accuracy(recs[b]),
                            "paired_ci": bl.paired_ci(recs[a], recs[b], f"{a} and {b} ({task})")})
    return out


def seed_differences(task: str, first: dict[str, list[dict[str, Any]]], again: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each method run at REPEAT_SEED (`again`) against its run at SEED (`first`)
    on the same problems: the difference a training seed alone makes."""
    bl = bench_learning()
    return [{"task": task, "method": m, "seed": REPEAT_SEED, "minus_seed": SEED, "n": len(again[m]), "acc": final_accuracy(again[m]),
             "minus_acc": final_accuracy(first[m]), "diff": final_accuracy(again[m]) - final_accuracy(first[m]),
             "paired_ci": bl.paired_ci(again[m], first[m], f"{m} at seeds {REPEAT_SEED} and {SEED} ({task})")}
            for m in again if first.get(m)]


def seed_table(seed_pairs: list[dict[str, Any]]) -> list[str]:
    if not seed_pairs:
        return []
    lines = ["", "## Training seed against training seed", "",
             f"The same method from the same iteration 0 at seed {REPEAT_SEED} (what it samples, the order it trains in) against seed {SEED}, "
             "on the same test problems: final accuracy, and the difference in points with its paired 95% bootstrap interval. "
             "It is the spread a difference between two methods of one seed each has to clear.", "",
             f"| task | method | seed {SEED} | seed {REPEAT_SEED} | difference |", "|---|---|---:|---:|---|"]
    lines += [f"| {p['task']} | {p['method']} | {percent(p['minus_acc'])} | {percent(p['acc'])} | {100 * p['diff']:+.1f} {interval(p['paired_ci'])} |"
              for p in seed_pairs]
    return lines


def pair_tables(pairs: list[dict[str, Any]]) -> list[str]:
    """The pages' method-against-method tables: per task, a row's method minus a column's, in points, with its paired interval."""
    if not pairs:
        return []
    lines = ["", "## Method against method", "",
             "Final accuracy of the row's method minus the column's on the same test problems, in points, with the paired 95% "
             "bootstrap interval (`scripts/bench_learning.py` `paired_ci`: the test problems resampled; one training seed per run). "
             "*total*: both tasks pooled, for the methods finished on both. †: one of the two runs is kept from a lost folder "
             f"(its outcomes from {OUTCOMES}), each from its own rebuild of iteration 0."]
    # Tasks, rows and columns in the campaign's order, whichever folder each pair came from.
    for task in sorted({p["task"] for p in pairs}, key=task_rank):
        mine = [p for p in pairs if p["task"] == task]
        rows, cols = sorted({p["method"] for p in mine}, key=method_rank), sorted({p["minus"] for p in mine}, key=method_rank)
        cell = {(p["method"], p["minus"]): f"{100 * p['diff']:+.1f} {interval(p['paired_ci'])}" + (" †" if p.get("across_folders") else "")
                for p in mine}
        lines += ["", f"{task} (n = {mine[0]['n']}):", "", "| minus → | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        lines += [f"| {r} | " + " | ".join(cell.get((r, c), "") for c in cols) + " |" for r in rows]
    return lines


def chain_tokens(d: Path, gold_examples: int, task: str = TASKS[0]) -> int:
    """Training tokens of the chunk chain that made the checkpoint after
    `gold_examples` gold examples (each chunk continued the one before)."""
    total = 0
    for k in range(1, gold_examples // CHUNK + 1):
        m = load(StageFolder(chunk_dir(d, k, task)).train_metrics) or {}
        total += int(m.get("tokens") or 0)
    return total


def run_comparison_stage(d: Path, stage: dict[str, Any], docs: Path) -> None:
    """Step 2: bench_learning's comparison of one task from the chosen
    iteration 0, resumable (bench_learning skips what has finished)."""
    task = stage["task"]
    folder = comparison_dir(d, task)
    choice = load(folder / "iteration0.json")
    if not choice:
        rows = curve(d, task)
        if len(rows) < len(CURVE):
            raise SystemExit(f"campaign: stopped: the comparison needs the whole competence curve of {task} ({len(rows)} of {len(CURVE)} points)")
        it0 = iteration0(rows)
        assert it0 is not None
        # Chosen once and recorded: a later change of the rule cannot move a comparison half way.
        choice = {**it0, "tokens": chain_tokens(d, it0["gold_examples"], task), "problems": it0["gold_examples"]}
        write_json(folder / "iteration0.json", choice)
    src = d / "src"
    args = comparison_args(d, task, docs)
    pins = comparison_pins(folder, args)
    command([str(src / ".venv" / "bin" / "python"), str(src / "scripts" / "bench_learning.py"), *args, *[x for o in pins for x in ("--set", o)]])
    write_json(folder / "done.json", {"finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                      "commit": (load(d / "campaign.json") or {}).get("commit")})
    publish(d, docs)


def comparison_args(d: Path, task: str, docs: Path) -> list[str]:
    """scripts/bench_learning.py's arguments for `task`'s comparison, from its recorded iteration 0."""
    folder, choice = comparison_dir(d, task), load(comparison_dir(d, task) / "iteration0.json")
    return ["--size", COMPARISON, "--tasks", task, "--seed", str(SEED), "--iteration0", choice["adapter"], "--iteration0-tokens", str(choice["tokens"]),
            "--iteration0-problems", str(choice["problems"]), "--out", str(folder / "runs"), "--docs", str(docs), "--name", f"learning-{task}",
            "--no-progress"]


def comparison_pins(folder: Path, args: list[str]) -> list[str]:
    """The config a comparison began with, kept to its end: where a default
    changed after its TriPosT run started (a `start --advance` to a later
    commit), the recorded value as a `--set` override for every method, so
    the runs begun before resume and the ones begun after match them (an
    evaluation's batch size changes bf16 text). Worked out once, then read
    from pins.json."""
    from tripost.loop import resume_overrides

    saved = load(folder / "pins.json")
    if saved is not None:
        return saved["pins"]
    recorded = load(RunLayout(folder / "runs" / "tripost").config)
    if recorded is None:
        return []  # nothing began yet: today's defaults throughout
    bl = bench_learning()
    a = bl.parse_args(args)
    bl.check_args(a)
    pins = resume_overrides(recorded, bl.method_configs(a, bl.run_size(a)[1], a.seed)["tripost"])
    write_json(folder / "pins.json", {"pins": pins, "why": "values the comparison's TriPosT run recorded where today's defaults differ",
                                      "commit": (load(folder.parent.parent / "campaign.json") or {}).get("commit")})
    return pins


def comparisons(docs: Path) -> dict[str, dict[str, Any]]:
    """Each task's comparison file (learning-TASK.json), finished or partial."""
    out = {}
    for task in TASKS:
        data = load(docs / f"learning-{task}.json")
        if data:
            out[task] = data
    return out


def bench_learning():
    """scripts/bench_learning.py of this checkout, as a module (its tables and verdict); imported on first
    use, since it needs the venv's packages and `start` runs under any python3."""
    import bench_learning as module  # scripts/ is on sys.path (above)

    return module


def pooled(d: Path, comp: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The issue's targets on the total of both tasks, once every task's
    comparison has finished: each method's per-problem records of the tasks
    pooled (a student per task, as TriPosT trains them), one evaluation of
    the pool (tripost.evaluate.compute_metrics) per method, then
    bench_learning's rows and verdict over it. TriPosT's iteration is chosen
    by the same rule on the pooled validation results; rejection is pooled at
    each task's own chosen iteration (only that one has a test evaluation)."""
    if set(comp) != set(TASKS) or any(c["meta"].get("partial") for c in comp.values()):
        return None
    from dataclasses import fields

    from tripost.evaluate import EvalConfig, EvalRecord, EvalResult, compute_metrics

    bl = bench_learning()
    per_task: dict[str, list[dict[str, Any]]] = {}
    val_by_it: dict[int, list[dict[str, Any]]] = {}
    T = None
    for task, c in comp.items():
        runs, sel, meta = c["meta"]["runs"][str(SEED)], c["selection"][0], c["meta"]
        T = meta["size"]["iterations"]
        tri = Path(runs["tripost"])
        ms = bl.methods(tri, Path(runs["rejection"]), Path(runs["sft-gold+"]), T, demo=Path(runs["tripost-demo"]), chosen=sel,
                        it0_tokens=(meta.get("iteration0") or {}).get("tokens"))
        per_task[task] = ms
        for v in bl.read_val(tri, T):
            val_by_it.setdefault(v["iteration"], []).append(v)
    assert T is not None
    # The pooled validation accuracy of each TriPosT iteration: the tasks' counts together.
    val = [{"iteration": t, "n": sum(v["n"] or 0 for v in vs),
            "final_acc": (sum((v["final_acc"] or 0) * (v["n"] or 0) for v in vs) / max(1, sum(v["n"] or 0 for v in vs)))
            if all(v.get("final_acc") is not None for v in vs) else None} for t, vs in sorted(val_by_it.items())]
    choice = bl.choose_iteration(val, T, "val") if all(v["final_acc"] is not None for v in val) else bl.choose_iteration([], T, "last")
    names = [m["method"] for m in next(iter(per_task.values()))]
    keep = {f.name for f in fields(EvalRecord)}
    out_ms = []
    for name in names:
        group = [next(m for m in ms if m["method"] == name) for ms in per_task.values()]
        recs = []
        for m in group:
            rows = bl.eval_records(m["eval"])
            if rows is None:
                break
            recs += [EvalRecord(**{k: v for k, v in r.items() if k in keep}) for r in rows]
        else:
            path = d / "pooled" / name / "eval.json"
            EvalResult(records=recs, metrics=compute_metrics(recs, n_boot=bl.PAIRED_BOOT), config=EvalConfig(progress=False)).save(path)
            kinds: dict[str, int] = {}
            for m in group:
                for k, v in (m.get("buffer_by_kind") or {}).items():
                    kinds[k] = kinds.get(k, 0) + v
            it = group[0].get("iteration")
            out_ms.append({"method": name, "iteration": it if len({m.get("iteration") for m in group}) == 1 else None,
                           "chosen": (it == choice["iteration"]) if name.startswith("tripost-t") else group[0].get("chosen"),
                           "eval": path, "train_tokens": sum(m["train_tokens"] for m in group),
                           "buffer_by_kind": kinds or None, "seconds": round(sum(m["seconds"] for m in group), 1)})
    records = bl.method_records(out_ms)
    rows = bl.rows_of(out_ms, seed=SEED, records=records)
    rows = [r for r in rows if r["task"] == "total"]
    return {"tasks": list(TASKS), "choice": choice, "rows": rows, "target": bl.verdict(rows, T, seed=SEED, records=records)}


def curve(d: Path, task: str | None = None) -> list[dict[str, Any]]:
    """The competence curve of `task` (None: every task's, in TASKS order)."""
    rows = []
    for t in (TASKS if task is None else (task,)):
        for n in CURVE:
            ev = load(chunk_dir(d, n // CHUNK, t) / "eval.json")
            if ev:
                rows.append(curve_point(ev, n, t, chunk_dir(d, n // CHUNK, t) / "train"))
    return rows


def curve_point(ev: dict[str, Any], n: int, task: str, adapter: Path) -> dict[str, Any]:
    m = ev["metrics"]["total"]
    return {"gold_examples": n, "task": task, "first_acc": m["first_accuracy"], "ci": (m.get("ci") or {}).get("first_accuracy"), "n": m["n"],
            "seen": ev["metrics"].get("seen", {}).get("first_accuracy"), "unseen": ev["metrics"].get("unseen", {}).get("first_accuracy"),
            "precision": ev["student"].get("precision"), "batch_size": ev["config"].get("batch_size"), "adapter": str(adapter)}


def iteration0(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The smallest checkpoint at >= COMPETENT, else the best one."""
    if not rows:
        return None
    ok = [r for r in rows if r["first_acc"] >= COMPETENT]
    return min(ok, key=lambda r: r["gold_examples"]) if ok else max(rows, key=lambda r: r["first_acc"])


# ------------------------------------------------------------------ report ---


def publish(d: Path, docs: Path) -> None:
    """learning.json / .md with what has finished so far (a --from-docs
    campaign leaves them as committed: its folder holds none of steps 1-3)."""
    if from_docs(d):
        return
    state, m = load(d / "campaign.json") or {}, load(d / "measure.json") or {}
    rows = curve(d)
    by_task = {t: [r for r in rows if r["task"] == t] for t in TASKS}
    it0 = {t: iteration0(r) for t, r in by_task.items() if r}
    comp = comparisons(docs)
    finished = [t for t in comp if (comparison_dir(d, t) / "done.json").exists()]
    curves_done = [t for t in TASKS if len(by_task[t]) == len(CURVE)]
    pool = pooled(d, {t: c for t, c in comp.items() if t in finished})
    data = {
        "meta": {"campaign": "issue 28", "commit": state.get("commit"), "started": state.get("started"),
                 "updated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seeds": [SEED], "machine": m.get("machine"),
                 "rates": {k: m.get(k) for k in ("train_tokens_per_s", "sample_tokens_per_s", "train_tokens_per_example")},
                 "command": f"python3 scripts/campaign.py start --dir {d}   # at commit {str(state.get('commit'))[:12]}",
                 "history": state.get("history"),
                 "steps_done": [f"competence on {t}" for t in curves_done] + [f"comparison on {t}" for t in finished],
                 "steps_running": [f"competence on {t} ({len(by_task[t])}/{len(CURVE)} points)" for t in TASKS if 0 < len(by_task[t]) < len(CURVE)]
                 + [f"comparison on {t} (partial)" for t in comp if t not in finished],
                 "steps_not_run": [f"{'2' if t == TASKS[0] else '3'} comparison on {t}" for t in TASKS if t not in comp]
                 + ([] if (docs / "self-improve.json").exists() else ["4 label-free methods"])
                 + [f"5 BIG-bench transfer on {t}" for t in TASKS if not (transfer_dir(d, t) / "done.json").exists()]
                 + ([] if pool else ["the total of both tasks (pooled verdict)"])},
        "sft_gold_curve": rows,
        "iteration0": it0,
        # Steps 2-3's rows (scripts/bench_learning.py's, one task each), finished or partial (`comparison[task].partial`).
        "comparison": {t: {"file": f"learning-{t}.json", "partial": c["meta"].get("partial"), "iteration0": c["meta"].get("iteration0"),
                           "selection": c.get("selection"), "target": c.get("target")} for t, c in comp.items()},
        "rows": [r for c in comp.values() for r in c.get("rows", [])],
        # The targets on the total of both tasks (`pooled`), when both comparisons have finished.
        "pooled": pool,
    }
    docs.mkdir(parents=True, exist_ok=True)
    write_json(docs / "learning.json", data)
    card = m.get("machine") or {}
    lines = ["# Learning campaign (issue 28)", "",
             f"Command: `{data['meta']['command']}`; progress: `tail -f {d / 'campaign.log'}`. Updated {data['meta']['updated']}.", "",
             f"Machine: {card.get('cpu')} ({card.get('cpus')} cpus), flags {', '.join(card.get('flags') or []) or 'none'}; "
             f"{(card.get('compute_profile') or {}).get('reason', '')}; measured once when the campaign began, for its projections "
             f"(whatever else ran then shared the CPU): training {m.get('train_tokens_per_s')} real tok/s, "
             f"greedy sampling {m.get('sample_tokens_per_s')} tok/s.", ""]
    if state.get("history"):
        lines += ["Commits: " + "; ".join(f"`{h['commit'][:12]}` from {h['since']}" for h in state["history"])
                  + " (`start --advance`: each stage ran at the commit current when it started).", ""]
    lines += ["## Step 1: competence (sft_gold_curve)", "",
              f"Gold SFT of the embedded student ({PRESET} preset), rationales alone, in continued 1-epoch chunks of {CHUNK} fresh "
              f"problems; greedy first attempt on {EVAL_N} seen + {EVAL_N} unseen held-out test problems; 95% Wilson intervals.", "",
              "| task | gold examples | first attempt (total) | 95% CI | seen | unseen | n |", "|---|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        ci = f"[{100 * r['ci'][0]:.1f}, {100 * r['ci'][1]:.1f}]" if r.get("ci") else "—"
        lines.append(f"| {r['task']} | {r['gold_examples']} | {100 * r['first_acc']:.1f}% | {ci} | {percent(r['seen'])} | {percent(r['unseen'])} | {r['n']} |")
    for t, chosen in it0.items():
        n_done = len(by_task[t])
        met = chosen["first_acc"] >= COMPETENT
        lines += ["", f"Iteration 0 on {t}: the checkpoint after {chosen['gold_examples']} gold examples "
                      f"({100 * chosen['first_acc']:.1f}% first-attempt accuracy; "
                      + ("the smallest at >= 30%)." if met else
                         "the best reached: no checkpoint reached 30%)." if n_done == len(CURVE) else
                         f"the best so far: none of the {n_done} of {len(CURVE)} checkpoints evaluated reached 30%).")]
    for task, c in comp.items():
        lines += ["", f"## Step {'2' if task == TASKS[0] else '3'}: TriPosT against its controls on {task}", "",
                  f"Command: `{c['meta'].get('command')}`; every table, the iteration choice and the plot: [learning-{task}.md](learning-{task}.md).", ""]
        if c["meta"].get("partial"):
            lines += [f"**Still running:** {c['meta']['partial']}.", ""]
        lines += ["Total of seen and unseen; accuracy in % with 95% Wilson intervals; *vs sft-gold+*: final accuracy minus sft-gold+'s "
                  "in points with the 95% paired-bootstrap interval over the same problems.", "",
                  *TOTAL_HEADER]
        lines += [total_row(r) for r in c.get("rows", []) if r["task"] == "total" and r["subset"] == "total"]
        if not c["meta"].get("partial"):
            for v in (c.get("target") or {}).get("per_seed", []):
                lines.append("")
                lines.append(f"Targets on {task} alone (chosen `{v.get('best')}`): all "
                             f"**{'MET' if v.get('met') else 'not decided' if v.get('met') is None else 'NOT MET'}**; the issue reads them on "
                             "the total of both tasks, pooled when both comparisons have finished.")
    if pool:
        bl = bench_learning()
        lines += ["", "## The total of both tasks: the targets", "",
                  f"Each method's per-problem records of {' and '.join(TASKS)} pooled (a student per task); TriPosT's iteration chosen on the "
                  f"pooled validation accuracy (iteration {pool['choice']['iteration']}); rejection at each task's own choice.", "",
                  *TOTAL_HEADER]
        lines += [total_row(r) for r in pool["rows"] if r["subset"] == "total"]
        lines += ["", *bl.reading(pool["target"])]
    more = [(f, what) for f, what in (("learning-evidence.md", "why the comparisons came out as they did, read off their transcripts and "
                                                                "buffers (scripts/learning_evidence.py)"),
                                        ("self-improve.md", "step 4, the label-free methods"), ("bigbench.md", "step 5, BIG-bench transfer"))
            if (docs / f).exists()]
    if more:
        lines += ["", "See also: " + "; ".join(f"[{f}]({f}): {what}" for f, what in more) + "."]
    lines += ["", "Not run yet: " + "; ".join(data["meta"]["steps_not_run"]) + ".", ""]
    (docs / "learning.md").write_text("\n".join(lines))


# The columns of a method's row in learning.md (a comparison's and the pooled total's).
TOTAL_HEADER = ["| method | iteration | n | first | final | vs sft-gold+ | fix | break | revised | train tokens |",
                "|---|---|---:|---:|---:|---|---:|---:|---:|---:|"]


def total_row(r: dict[str, Any]) -> str:
    """One bench_learning row as a line of TOTAL_HEADER's table."""
    it = "—" if r.get("iteration") is None else f"{r['iteration']}{' (chosen)' if r.get('chosen') else ''}"
    return (f"| {r['method']} | {it} | {r['n']} | {percent(r['first_acc'])} | {percent(r['final_acc'])} | "
            f"{interval(r.get('paired_ci_vs_sft_gold_plus'))} | {percent(r.get('fix_rate'))} | {percent(r.get('break_rate'))} | {percent(r.get('revised_rate'))} | {r.get('train_tokens')} |")


def interval(ci: list[float] | None) -> str:
    """A paired interval of a difference as the pages print it, in points: [-6.8, +0.2]; — when there is none."""
    return "—" if not ci else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


# -------------------------------------------------------------------- run ---


def plan(d: Path, m: dict[str, Any]) -> list[dict[str, Any]]:
    out = stages(d)
    train_s = CHUNK * m["train_tokens_per_example"] / m["train_tokens_per_s"]
    eval_s = 2 * EVAL_N * 120 / m["sample_tokens_per_s"]  # ~120 tokens a greedy first attempt
    for s in out:
        s["projected_s"] = round({"train": train_s, "eval": eval_s, "label-free": label_free_seconds(m), "controls": controls_seconds(m),
                                  "transfer": transfer_seconds(m, s.get("task"))}.get(s["kind"]) or comparison_seconds(m))
    return out


def label_free_seconds(m: dict[str, Any]) -> float:
    """A rough projection of one label-free method: 2 iterations of 400 x
    LABEL_FREE_SAMPLES attempts at ~150 tokens and TriPosT's tokens per
    iteration (~2 epochs of ~400 examples of ~2x a gold example's tokens),
    then one test evaluation of 400 problems at ~250 tokens."""
    sample = 2 * 400 * LABEL_FREE_SAMPLES * 150 + 400 * 250
    train = 2 * 2 * 400 * 2 * m["train_tokens_per_example"]
    return sample / m["sample_tokens_per_s"] + train / m["train_tokens_per_s"]


def controls_seconds(m: dict[str, Any]) -> float:
    """A rough projection of a --from-docs task's controls: two test
    evaluations of 400 problems at ~250 tokens (sft-gold, sft-gold+) and
    sft-gold+'s training (~2 epochs of ~400 examples of ~2x a gold example)."""
    return 2 * 400 * 250 / m["sample_tokens_per_s"] + 2 * 400 * 2 * m["train_tokens_per_example"] / m["train_tokens_per_s"]


def transfer_seconds(m: dict[str, Any], task: str | None) -> float:
    """A rough projection of one task's transfer: 6 students on TRANSFER_N
    examples, an attempt and a turn of about half the new-token room each."""
    return 6 * TRANSFER_N * 2 * 0.5 * TRANSFER.get(task or "", ("", 256))[1] / m["sample_tokens_per_s"]


def comparison_seconds(m: dict[str, Any]) -> float:
    """A rough projection of one task's comparison (bench_learning's campaign
    size) from the measured rates: 7 test evaluations of 400 problems and 4
    validation ones of 200 at ~250 generated tokens a problem (attempt and
    self-improvement turns); 4 collections of 400 attempts at ~150 tokens
    (2 TriPosT, 2 rejection); ~5 trainings of 2 epochs over ~400 examples of
    ~2x a gold example's tokens (TriPosT's and rejection's iterations, the
    demo), and sft-gold+'s, token-matched to TriPosT's two."""
    sample = (7 * 400 + 4 * 200) * 250 + 4 * 400 * 150
    train = 5 * 2 * 400 * 2 * m["train_tokens_per_example"] + 2 * 2 * 400 * 2 * m["train_tokens_per_example"]
    return sample / m["sample_tokens_per_s"] + train / m["train_tokens_per_s"]


def cmd_run(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    state = load(d / "campaign.json")
    if not state:
        say(f"{d} holds no campaign: starting over (run `campaign.py start`)")
        return 2
    docs = Path(state["docs"])
    say(f"campaign at commit {state['commit'][:12]}, results into {docs}")
    m = measure(d)
    say(f"measured: training {m['train_tokens_per_s']} real tok/s ({m['train_tokens_per_example']} tokens a gold example), "
        f"sampling {m['sample_tokens_per_s']} tok/s")
    stages = plan(d, m)
    left = [s for s in stages if not s["done"]]
    say(f"plan: {len(stages)} stages, {len(stages) - len(left)} done, {len(left)} to go, projected {sum(s['projected_s'] for s in left) / 3600:.1f} h:")
    for s in stages:
        say(f"  {'kept ' if s.get('kept') else 'done ' if s['done'] else 'to do'}  {s['name']:<34} ~{s['projected_s'] / 60:.0f} min")
    say("  the demo (issue 28, step 7) is scripts/demo.sh")
    for i, s in enumerate(stages, 1):
        if s["done"]:
            continue
        if s.get("blocked"):
            say(f"[{i}/{len(stages)}] {s['name']} waits: it {s['blocked']}; the stages after it go on")
            continue
        t0 = time.perf_counter()
        say(f"[{i}/{len(stages)}] {s['name']} ...")
        {"comparison": run_comparison_stage, "label-free": run_label_free_stage, "controls": run_controls_stage,
         "transfer": run_transfer_stage}.get(s["kind"], run_competence_stage)(d, s, docs)
        say(f"[{i}/{len(stages)}] {s['name']} finished in {(time.perf_counter() - t0) / 60:.1f} min")
    publish(d, docs)
    for task in TASKS:
        it0 = iteration0(curve(d, task))
        if it0:
            say(f"{task}: iteration 0 = {it0['gold_examples']} gold examples, {100 * it0['first_acc']:.1f}% first attempt")
    waiting = [s["name"] for s in stages if s.get("blocked") and not s["done"]]
    say(f"finished every stage this runner could run; results in {docs / 'learning.md'}"
        + (f"; waiting for their files: {', '.join(waiting)}" if waiting else ""))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Rewrite learning, self-improve and bigbench .json/.md from what has finished, with this checkout's
    reporting code (reporting only: the results stay the pinned clone's)."""
    d = Path(args.dir)
    state = load(d / "campaign.json")
    if not state:
        print(f"no campaign in {d}", file=sys.stderr)
        return 1
    docs = Path(args.docs or state["docs"])
    publish(d, docs)
    publish_label_free(d, docs)
    publish_transfer(d, docs)
    print(f"wrote self-improve.* in {docs} where step 4 has results (a --from-docs campaign leaves learning.* and bigbench.* as committed)"
          if from_docs(d) else
          f"wrote {docs / 'learning.json'} and {docs / 'learning.md'} (and self-improve.*, bigbench.* where those steps have results)")
    return 0


def stage_minutes(d: Path) -> dict[str, float]:
    """Each stage's minutes as the worker logged them when it finished ("[i/n] NAME finished in X min"); the last, if several."""
    log = d / "campaign.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^\[[^]]*\] \[\d+/\d+\] (.+) finished in ([\d.]+) min$", text, re.M)}


def cmd_status(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    state = load(d / "campaign.json")
    if not state:
        print(f"no campaign in {d}")
        return 1
    pid = (d / "worker.pid").read_text().strip() if (d / "worker.pid").exists() else ""
    alive = worker_alive(d)
    print(f"campaign at {state['commit'][:12]} since {state['started']}; worker {'running (pid ' + pid + ')' if alive else 'not running'}")
    took, every = stage_minutes(d), stages(d)
    for s in every:
        print(f"  {'kept ' if s.get('kept') else 'done ' if s['done'] else 'waits' if s.get('blocked') else 'to do'}  {s['name']}" + (f" ({s['blocked']})" if s.get("blocked") and not s["done"] else "")
              + (f"  [{took[s['name']]:.1f} min]" if s["done"] and s["name"] in took else ""))
    # What is left, each stage at the median of the logged times of the finished stages of its kind
    # (the plan's projections from the first measurement run about 2x long for the label-free methods);
    # a kind none of whose stages has finished in this folder (a new one) at the minutes published before.
    kind = {s["name"]: s["kind"] for s in every}
    published = ((load(Path(state["docs"]) / "self-improve.json") or {}).get("meta") or {}).get("stage_minutes") or {}
    def minutes(k: str) -> tuple[list[float], bool]:
        here = [m for name, m in took.items() if kind.get(name) == k]
        return (here, False) if here else ([m for name, m in published.items() if kind.get(name) == k], True)
    left = [minutes(s["kind"]) for s in every if not s["done"]]
    if left and all(ms for ms, _ in left):
        print(f"  left: about {sum(statistics.median(ms) for ms, _ in left) / 60:.1f} h on this machine "
              "(each stage at the median of the finished stages of its kind"
              + ("; kinds none of whose stages has finished here at the minutes published in self-improve.json)"
                 if any(before for _, before in left) else ")"))
    for r in curve(d):
        print(f"  {r['task']} {r['gold_examples']:>5} gold: first attempt {100 * r['first_acc']:.1f}% (n={r['n']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("start", help="pinned clone, .venv, and the worker in the background")
    s.add_argument("--dir", default=str(DEFAULT_DIR))
    s.add_argument("--commit", default=None, help="revision to pin (default: the recorded one, else HEAD)")
    s.add_argument("--docs", default=None, help="where learning.json/.md go (default: this repository's docs/benchmarks)")
    s.add_argument("--advance", action="store_true", help="move a stopped campaign to --commit (default HEAD), a later commit of its "
                   "history, keeping its finished stages")
    s.add_argument("--from-docs", action="store_true", help="step 4 alone, rebuilding what it needs of steps 1-3 committed in --docs "
                   "(a campaign whose folder was lost)")
    s.add_argument("--keep-published", action="store_true", help="with --from-docs: keep the label-free runs whose rows --docs' "
                   "self-improve.json already holds, as published, and run only the rest (each task's iteration 0 and controls "
                   "are rebuilt only where one of its runs is left)")
    r = sub.add_parser("run", help="the worker (foreground)")
    r.add_argument("--dir", default=str(DEFAULT_DIR))
    t = sub.add_parser("status", help="where the campaign stands")
    t.add_argument("--dir", default=str(DEFAULT_DIR))
    u = sub.add_parser("publish", help="rewrite learning.*, self-improve.* and bigbench.* from what has finished (this checkout's reporting code)")
    u.add_argument("--dir", default=str(DEFAULT_DIR))
    u.add_argument("--docs", default=None, help="default: where the campaign publishes")
    g = sub.add_parser("gold-plus", help="a --from-docs campaign's sft-gold+ of one task (what its controls stage runs)")
    g.add_argument("--dir", default=str(DEFAULT_DIR))
    g.add_argument("--task", choices=TASKS, required=True)
    args = p.parse_args(argv)
    if args.verb == "start":
        args.commit_given = args.commit is not None
        args.commit = args.commit or "HEAD"
        return cmd_start(args)
    try:
        return {"run": cmd_run, "status": cmd_status, "publish": cmd_publish, "gold-plus": cmd_gold_plus}[args.verb](args)
    except BrokenPipeError:  # `status | head` closed stdout early: not an error (as in the tripost CLI)
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
