"""The learning campaign (issue 28), made for long work on a small machine.

    python3 scripts/campaign.py start  [--dir DIR] [--commit REV]   # pinned clone + .venv, then `run` in the background
    python3 scripts/campaign.py run    --dir DIR                    # the worker (what `start` launches)
    python3 scripts/campaign.py status [--dir DIR]                  # where it stands
    tail -f DIR/campaign.log                                        # one line per stage

`start` clones this repository at REV (default HEAD) into DIR/src, installs
it into DIR/src/.venv with scripts/setup.sh, and launches `run` from that
clone in the background, so editing the working tree cannot change a
campaign half way. DIR/campaign.json records the commit; a later `start`
on the same DIR resumes at that commit (another commit needs a new DIR).

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
   line, tripost.buffer.rationale_examples) of arithmetic, small preset,
   trained in continued chunks of 1 epoch over fresh problems
   (`tripost train --adapter PREVIOUS`), first-attempt accuracy (greedy,
   `--max-turns 0`) on 150 seen + 150 unseen held-out test problems after
   400, 800, 1,600 and 3,200 gold examples, with Wilson intervals:
   `sft_gold_curve`. Iteration 0 of the comparison is the smallest
   checkpoint at >= 30% first-attempt accuracy, or the best reached.

Steps 2-7 (the comparison, word_sorting, the label-free methods, BIG-bench,
the demo) are not in this runner yet: `status` and the plan say so.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `start` runs under any python3: tripost's stdlib-only modules come from this checkout

from tripost.fileio import atomic_write_json  # noqa: E402

DEFAULT_DIR = Path(os.environ.get("TRIPOST_CAMPAIGN_DIR", "/work/campaign"))

TASK = "arithmetic"
PRESET = "small"
CHUNK = 400  # gold examples per training chunk
CURVE = (400, 800, 1600, 3200)  # gold examples at which the checkpoint is evaluated
EVAL_N = 150  # held-out problems per subset (seen, unseen): 300 in all
COMPETENT = 0.30  # first-attempt accuracy that makes a checkpoint iteration 0
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
    exe = dirpath / "src" / ".venv" / "bin" / "tripost"
    cmd = [str(exe), *args]
    say("$ " + " ".join(shlex.quote(a) for a in cmd))
    done = subprocess.run(cmd, env={**os.environ, **ENV}, stdout=sys.stdout, stderr=sys.stdout)
    if done.returncode != 0:
        raise SystemExit(f"campaign: stopped: `{' '.join(cmd[:3])} ...` exited {done.returncode}; rerun `campaign.py start` to resume")


# ----------------------------------------------------------------- start ---


def cmd_start(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    state = load(d / "campaign.json")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.commit], capture_output=True, text=True, check=True).stdout.strip()
    if state and state["commit"] != commit and not args.commit_given:
        commit = state["commit"]  # resume at the recorded commit
    if state and state["commit"] != commit:
        print(f"campaign: {d} runs commit {state['commit'][:12]}; use another --dir for {commit[:12]}", file=sys.stderr)
        return 2
    if not state and d.exists() and any(d.iterdir()):
        print(f"campaign: {d} exists but holds no campaign.json; choose an empty or new --dir", file=sys.stderr)
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
    docs = Path(args.docs) if args.docs else ROOT / "docs" / "benchmarks"
    if not state:
        state = {"commit": commit, "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "docs": str(docs)}
        write_json(d / "campaign.json", state)
    log = open(d / "campaign.log", "a")
    worker = subprocess.Popen([str(src / ".venv" / "bin" / "python"), str(src / "scripts" / "campaign.py"), "run", "--dir", str(d)],
                              stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **ENV}, start_new_session=True)
    (d / "worker.pid").write_text(f"{worker.pid}\n")
    print(f"campaign: running at {commit[:12]} (pid {worker.pid}); follow it with: tail -f {d / 'campaign.log'}")
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
    problems = sample_problems(get_task(TASK), split="train", subset="seen", preset=PRESET, n=48, seed=SEED + 1)
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


def chunk_dir(d: Path, k: int) -> Path:
    return d / "competence" / f"gold{k * CHUNK}"


def competence_stages(d: Path) -> list[dict[str, Any]]:
    chunks = max(CURVE) // CHUNK
    stages = []
    for k in range(1, chunks + 1):
        stages.append({"name": f"competence/train {k * CHUNK} gold", "kind": "train", "k": k, "done": (chunk_dir(d, k) / "train" / "train_metrics.json").exists()})
        if k * CHUNK in CURVE:
            stages.append({"name": f"competence/eval at {k * CHUNK} gold", "kind": "eval", "k": k, "done": (chunk_dir(d, k) / "eval.json").exists()})
    return stages


def run_competence_stage(d: Path, stage: dict[str, Any], docs: Path) -> None:
    from tripost.buffer import BufferStats, rationale_examples, save_buffer
    from tripost.tasks import get_task, sample_problems

    k = stage["k"]
    folder = chunk_dir(d, k)
    if stage["kind"] == "train":
        if not (folder / "buffer" / "dataset").exists():
            # Chunk k: problems (k-1)*CHUNK .. k*CHUNK of one fixed draw (prefix-stable), never seen before.
            pool = sample_problems(get_task(TASK), split="train", subset="seen", preset=PRESET, n=max(CURVE), seed=SEED)
            examples = rationale_examples(pool[(k - 1) * CHUNK: k * CHUNK])
            save_buffer(examples, BufferStats(records=len(examples)), folder / "buffer")
        previous = [] if k == 1 else ["--adapter", str(chunk_dir(d, k - 1) / "train")]
        tripost(d, "train", "--buffer", str(folder / "buffer"), "--out", str(folder / "train"), *previous,
                "epochs=1", f"seed={SEED}", "progress=false")
    else:
        tripost(d, "eval", "--adapter", str(folder / "train"), "--task", TASK, "--subset", "both", "--n", str(EVAL_N),
                "--max-turns", "0", "--seed", str(SEED), "--no-progress", "--out", str(folder / "eval.json"))
        publish(d, docs)


def curve(d: Path) -> list[dict[str, Any]]:
    rows = []
    for n in CURVE:
        ev = load(chunk_dir(d, n // CHUNK) / "eval.json")
        if not ev:
            continue
        m = ev["metrics"]["total"]
        rows.append({"gold_examples": n, "task": TASK, "first_acc": m["first_accuracy"], "ci": (m.get("ci") or {}).get("first_accuracy"), "n": m["n"],
                     "seen": ev["metrics"].get("seen", {}).get("first_accuracy"), "unseen": ev["metrics"].get("unseen", {}).get("first_accuracy"),
                     "precision": ev["student"].get("precision"), "batch_size": ev["config"].get("batch_size"),
                     "adapter": str(chunk_dir(d, n // CHUNK) / "train")})
    return rows


def iteration0(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The smallest checkpoint at >= COMPETENT, else the best one."""
    if not rows:
        return None
    ok = [r for r in rows if r["first_acc"] >= COMPETENT]
    return min(ok, key=lambda r: r["gold_examples"]) if ok else max(rows, key=lambda r: r["first_acc"])


# ------------------------------------------------------------------ report ---


def publish(d: Path, docs: Path) -> None:
    """learning.json / .md with what has finished so far."""
    state, m = load(d / "campaign.json") or {}, load(d / "measure.json") or {}
    rows = curve(d)
    it0 = iteration0(rows)
    data = {
        "meta": {"campaign": "issue 28", "commit": state.get("commit"), "started": state.get("started"),
                 "updated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seeds": [SEED], "machine": m.get("machine"),
                 "rates": {k: m.get(k) for k in ("train_tokens_per_s", "sample_tokens_per_s", "train_tokens_per_example")},
                 "command": f"python3 scripts/campaign.py start --dir {d}   # at commit {str(state.get('commit'))[:12]}",
                 "steps_done": ["competence" if len(rows) == len(CURVE) else f"competence ({len(rows)}/{len(CURVE)} points)"],
                 "steps_not_run": ["2 comparison on arithmetic", "3 word_sorting", "4 label-free methods", "5 BIG-bench", "6 demo"]},
        "sft_gold_curve": rows,
        "iteration0": it0,
        "rows": [],
    }
    docs.mkdir(parents=True, exist_ok=True)
    write_json(docs / "learning.json", data)
    card = m.get("machine") or {}
    lines = ["# Learning campaign (issue 28)", "",
             f"Command: `{data['meta']['command']}`; progress: `tail -f {d / 'campaign.log'}`. Updated {data['meta']['updated']}.", "",
             f"Machine: {card.get('cpu')} ({card.get('cpus')} cpus), flags {', '.join(card.get('flags') or []) or 'none'}; "
             f"{(card.get('compute_profile') or {}).get('reason', '')}; measured training {m.get('train_tokens_per_s')} real tok/s, "
             f"greedy sampling {m.get('sample_tokens_per_s')} tok/s.", "",
             "## Step 1: competence (sft_gold_curve)", "",
             f"Gold SFT of the embedded student on {TASK} ({PRESET} preset), rationales alone, in continued 1-epoch chunks of "
             f"{CHUNK} fresh problems; greedy first attempt on {EVAL_N} seen + {EVAL_N} unseen held-out test problems; "
             "95% Wilson intervals.", "",
             "| gold examples | first attempt (total) | 95% CI | seen | unseen | n |", "|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        ci = f"[{100 * r['ci'][0]:.1f}, {100 * r['ci'][1]:.1f}]" if r.get("ci") else "—"
        lines.append(f"| {r['gold_examples']} | {100 * r['first_acc']:.1f}% | {ci} | {_pct(r['seen'])} | {_pct(r['unseen'])} | {r['n']} |")
    if it0:
        met = it0["first_acc"] >= COMPETENT
        lines += ["", f"Iteration 0 of the comparison: the checkpoint after {it0['gold_examples']} gold examples "
                      f"({100 * it0['first_acc']:.1f}% first-attempt accuracy; "
                      + ("the smallest at >= 30%)." if met else
                         "the best reached: no checkpoint reached 30%)." if len(rows) == len(CURVE) else
                         f"the best so far: none of the {len(rows)} of {len(CURVE)} checkpoints evaluated reached 30%).")]
    lines += ["", "Steps 2-6 (TriPosT against its controls, word_sorting, the label-free methods, BIG-bench, the demo) have not run yet.", ""]
    (docs / "learning.md").write_text("\n".join(lines))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


# -------------------------------------------------------------------- run ---


def plan(d: Path, m: dict[str, Any]) -> list[dict[str, Any]]:
    stages = competence_stages(d)
    train_s = CHUNK * m["train_tokens_per_example"] / m["train_tokens_per_s"]
    eval_s = 2 * EVAL_N * 120 / m["sample_tokens_per_s"]  # ~120 tokens a greedy first attempt
    for s in stages:
        s["projected_s"] = round(train_s if s["kind"] == "train" else eval_s)
    return stages


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
        say(f"  {'done ' if s['done'] else 'to do'}  {s['name']:<34} ~{s['projected_s'] / 60:.0f} min")
    say("  not in this runner yet: steps 2-7 of issue 28 (comparison, word_sorting, label-free, BIG-bench, demo)")
    for i, s in enumerate(stages, 1):
        if s["done"]:
            continue
        t0 = time.perf_counter()
        say(f"[{i}/{len(stages)}] {s['name']} ...")
        run_competence_stage(d, s, docs)
        say(f"[{i}/{len(stages)}] {s['name']} finished in {(time.perf_counter() - t0) / 60:.1f} min")
    publish(d, docs)
    it0 = iteration0(curve(d))
    say(f"competence done: iteration 0 = {it0['gold_examples']} gold examples, {100 * it0['first_acc']:.1f}% first attempt" if it0 else "no curve")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    d = Path(args.dir)
    state = load(d / "campaign.json")
    if not state:
        print(f"no campaign in {d}")
        return 1
    pid = (d / "worker.pid").read_text().strip() if (d / "worker.pid").exists() else None
    alive = bool(pid) and Path(f"/proc/{pid}").exists()
    print(f"campaign at {state['commit'][:12]} since {state['started']}; worker {'running (pid ' + pid + ')' if alive else 'not running'}")
    for s in competence_stages(d):
        print(f"  {'done ' if s['done'] else 'to do'}  {s['name']}")
    for r in curve(d):
        print(f"  {r['gold_examples']:>5} gold: first attempt {100 * r['first_acc']:.1f}% (n={r['n']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("start", help="pinned clone, .venv, and the worker in the background")
    s.add_argument("--dir", default=str(DEFAULT_DIR))
    s.add_argument("--commit", default=None, help="revision to pin (default: the recorded one, else HEAD)")
    s.add_argument("--docs", default=None, help="where learning.json/.md go (default: this repository's docs/benchmarks)")
    r = sub.add_parser("run", help="the worker (foreground)")
    r.add_argument("--dir", default=str(DEFAULT_DIR))
    t = sub.add_parser("status", help="where the campaign stands")
    t.add_argument("--dir", default=str(DEFAULT_DIR))
    args = p.parse_args(argv)
    if args.verb == "start":
        args.commit_given = args.commit is not None
        args.commit = args.commit or "HEAD"
        return cmd_start(args)
    return cmd_run(args) if args.verb == "run" else cmd_status(args)


if __name__ == "__main__":
    raise SystemExit(main())
