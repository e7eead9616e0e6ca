#!/usr/bin/env python
"""Benchmark weighted SFT: throughput and memory per precision, and padding reduction.

1. precisions: fp32 LoRA, bf16 LoRA and QLoRA (NF4 base) on the embedded
   student, through the real trainer (tripost.train.build_trainer), a few
   optimizer steps of length-grouped batches each, every cell in a fresh
   worker process (so peak memory is that cell's own); real (non-pad)
   tokens/s and peak memory (CPU: the worker's peak RSS; CUDA: peak allocated).
2. padding: one epoch over the same realistic buffer as plain padded batches
   (random order, each padded to its longest example: what a random sampler
   and a padding collator give) and as length-grouped batches
   (tripost.train.LengthBucketSampler), in one worker on one model, the two
   kinds of step alternating (plain, grouped, plain, ...), each a full
   forward/backward/AdamW step with the trainer's collator and loss. A shared
   machine's load then hits both alike instead of deciding the comparison.
   Real tokens/s by wall clock and by the worker's CPU time.

The buffer is a realistic mix: problems of the four generated families, kinds
at TriPosT's 1.5 : 1 : 1 (improvement : direct : gold), improvement
trajectories with 1-3 edits (a wrong rationale, its feedback, the updated
answer ...), rendered exactly as tripost.buffer renders them.

Every worker first runs one untimed forward/backward, so one-time set-up
(allocator, lazy kernels) is not charged to whichever cell runs first.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_train.py \\
        --json docs/benchmarks/train.json --md docs/benchmarks/train.md

Target (issue 6), measured in one run: length-grouped >= 1.3x the real
tokens/s of plain padded batches. `--quick` is a smoke run (tiny sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAMILIES = ("arithmetic", "word_sorting", "date_understanding", "logical_deduction")
TARGET = 1.3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--student", default="smollm2-135m")
    p.add_argument("--precisions", default="fp32,bf16,nf4")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=1, help="timed optimizer steps per precision")
    p.add_argument("--examples", type=int, default=48, help="examples in the padding comparison (one epoch of each kind)")
    p.add_argument("--pad-precision", default="bf16", help="precision of the padding comparison (default bf16: the fastest here; the effect is the batches')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: torch's own)")
    p.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false",
                   help="keep every activation (~2 GiB per 1000 padded tokens in fp32; checkpointing is TrainConfig's default)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    p.add_argument("--json", default=None, help="write results here")
    p.add_argument("--md", default=None, help="write a Markdown page with the table and the command here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ------------------------------------------------------------------ data ---


def _corrupt(rationale: str, rng: random.Random) -> tuple[str, int, str, int]:
    """A wrong version of a gold rationale: one step (or the final response)
    altered, and everything after it dropped and re-ended with a wrong answer.
    Returns (text, first wrong step, the wrong part, number of steps)."""
    from tripost.format import final_line, parse_rationale

    r = parse_rationale(rationale)
    n = max(r.n_steps, 1)
    k = rng.randint(1, n)
    steps = list(r.steps[:k])
    bad = steps[-1] if steps else "the answer"
    digits = [i for i, ch in enumerate(bad) if ch.isdigit()]
    if digits:
        i = rng.choice(digits)
        bad = bad[:i] + str((int(bad[i]) + rng.randint(1, 8)) % 10) + bad[i + 1 :]
    else:
        bad = bad + " (so the order is reversed)"
    if steps:
        steps[-1] = bad
    text = "\n".join([r.preamble] if r.preamble else []) + ("\n" if r.preamble else "")
    text += "\n".join(f"({i + 1}) {s}" for i, s in enumerate(steps))
    text += "\n" + final_line(str(rng.randint(2, 999)))
    segment = bad[: min(len(bad), 40)]
    return text.strip(), k, segment, len(steps)


def realistic_rows(n: int, seed: int) -> dict[str, list]:
    """`n` buffer rows (prompt, completion, kind, weight) in TriPosT's kind mix."""
    from tripost.buffer import trajectory_text
    from tripost.format import Feedback
    from tripost.tasks import get_task, sample_problems

    rng = random.Random(seed)
    per = n // len(FAMILIES) + 2
    problems = []
    for f in FAMILIES:
        task = get_task(f)
        for subset in ("seen", "unseen"):
            problems += sample_problems(task, split="train", subset=subset, preset="small", n=per // 2 + 1, seed=seed)
    rng.shuffle(problems)
    kinds = rng.choices(["improvement", "direct", "gold"], weights=[1.5, 1.0, 1.0], k=n)
    rows: dict[str, list] = {"prompt": [], "completion": [], "kind": [], "weight": []}
    for i, kind in enumerate(kinds):
        p = problems[i % len(problems)]
        if kind == "improvement":
            edits = rng.choices([1, 2, 3], weights=[6, 3, 1])[0]
            turns = []
            for _ in range(edits):
                wrong, k, seg, n_steps = _corrupt(p.rationale, rng)
                fb = Feedback(n_steps=n_steps, error_step=k, segment=seg, reason=f"the value in step ({k}) does not follow from the step before.")
                turns.append({"rationale": wrong, "feedback": fb.render()})
            turns.append({"rationale": p.rationale})
        else:
            turns = [{"rationale": p.rationale}]
        rows["prompt"].append(p.question)
        rows["completion"].append(trajectory_text(turns))
        rows["kind"].append(kind)
        rows["weight"].append(1.0)
    return rows


# ---------------------------------------------------------------- worker ---


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_cell(cell: dict) -> dict:
    """One measurement, in this (fresh) process."""
    import datasets
    import torch
    from transformers import TrainerCallback

    from tripost.train import TrainConfig, build_trainer, load_for_training, prepare_dataset, weighted_causal_lm_loss

    rows = realistic_rows(cell["examples"], cell["seed"])
    if cell.get("threads"):
        torch.set_num_threads(int(cell["threads"]))
    cfg = TrainConfig(
        student=cell["student"], precision=cell["precision"], batch_size=cell["batch_size"],
        gradient_checkpointing=cell["gradient_checkpointing"],
        max_steps=cell["steps"], group_by_length=cell["grouped"], learning_rate=1e-4, warmup=0.0,
        save_steps=10_000, logging_steps=10_000, progress=False, seed=cell["seed"],
    )
    t0 = time.perf_counter()
    student = load_for_training(cfg)
    load_s = time.perf_counter() - t0
    dev = student.device
    if dev.type == "cuda":
        torch.cuda.synchronize()
    rss_loaded = _rss_mib()
    train_set, counts = prepare_dataset(datasets.Dataset.from_dict(rows), student.tokenizer, cfg)

    # Untimed warm-up: one forward/backward of a small batch, gradients dropped.
    from tripost.train import WeightedCollator

    warm = WeightedCollator(student.tokenizer.pad_token_id)([train_set[i] for i in range(min(2, len(train_set)))])
    loss = weighted_causal_lm_loss(student.model, warm["input_ids"].to(dev), warm["attention_mask"].to(dev), warm["loss_weights"].to(dev))
    loss.backward()
    student.model.zero_grad(set_to_none=True)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.begin = self.end = None

        def on_train_begin(self, args, state, control, **kw):
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            self.end = time.perf_counter()

    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(cfg, student, train_set, Path(tmp), callbacks=[clock])
        cpu0 = time.process_time()
        trainer.train()
        cpu_s = time.process_time() - cpu0
    trainer.flush_token_counts()
    seconds = clock.end - clock.begin
    tc = trainer.token_counts
    out = {
        **cell,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "load_s": round(load_s, 2),
        "steps_done": int(trainer.state.global_step),
        "examples_used": counts["examples"],
        "seconds": round(seconds, 3),
        "tokens": tc["tokens"],
        "padded_tokens": tc["padded"],
        "weighted_tokens": tc["weighted"],
        "tokens_per_s": round(tc["tokens"] / seconds, 2),
        "cpu_seconds": round(cpu_s, 2),  # whole train() call, set-up included
        "tokens_per_cpu_s": round(tc["tokens"] / cpu_s, 2),
        "padding_share": round(1 - tc["tokens"] / tc["padded"], 4) if tc["padded"] else 0.0,
        "s_per_step": round(seconds / max(1, trainer.state.global_step), 3),
        "final_loss": next((e["loss"] for e in reversed(trainer.state.log_history) if "loss" in e), None),
        "trainable_params": sum(p.numel() for p in student.model.parameters() if p.requires_grad),
        "load_avg": os.getloadavg()[0],
    }
    if dev.type == "cuda":
        out["peak_mem_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["mem_kind"] = "cuda peak allocated"
    else:
        out["peak_mem_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        out["model_rss_mib"] = round(rss_loaded, 1)
        out["mem_kind"] = "peak RSS"
    return out


def run_padding(cell: dict) -> dict:
    """Plain padded vs length-grouped batches, alternating steps on one model."""
    import datasets
    import torch

    from tripost.train import LengthBucketSampler, TrainConfig, WeightedCollator, _forward_weighted, load_for_training, prepare_dataset

    if cell.get("threads"):
        torch.set_num_threads(int(cell["threads"]))
    cfg = TrainConfig(student=cell["student"], precision=cell["precision"], batch_size=cell["batch_size"],
                      gradient_checkpointing=cell["gradient_checkpointing"], seed=cell["seed"])
    student = load_for_training(cfg)
    dev = student.device
    train_set, _ = prepare_dataset(datasets.Dataset.from_dict(realistic_rows(cell["examples"], cell["seed"])), student.tokenizer, cfg)
    lengths = list(train_set["length"])
    bs = cell["batch_size"]
    torch.manual_seed(cell["seed"])
    orders = {"plain": torch.randperm(len(lengths)).tolist(), "grouped": list(LengthBucketSampler(lengths, bs))}
    collate = WeightedCollator(student.tokenizer.pad_token_id)
    batches = {k: [collate([train_set[i] for i in o[j : j + bs]]) for j in range(0, len(o), bs)] for k, o in orders.items()}
    params = [p for p in student.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step(b: dict) -> None:
        ids, mask, w = (b[k].to(dev) for k in ("input_ids", "attention_mask", "loss_weights"))
        total, norm = _forward_weighted(student.model, ids, mask, w)
        (total / norm.clamp_min(1e-8)).backward()
        torch.nn.utils.clip_grad_norm_(params, 0.3)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    small = collate([train_set[i] for i in range(min(2, len(train_set)))])
    step(small)  # untimed warm-up
    stats = {k: {"seconds": 0.0, "cpu_seconds": 0.0, "tokens": 0, "padded_tokens": 0, "steps": 0, "step_seconds": []} for k in batches}
    n = max(len(v) for v in batches.values())
    for i in range(n):
        for k in (("plain", "grouped") if i % 2 == 0 else ("grouped", "plain")):
            if i >= len(batches[k]):
                continue
            b = batches[k][i]
            t, c = time.perf_counter(), time.process_time()
            step(b)
            dt, dc = time.perf_counter() - t, time.process_time() - c
            st = stats[k]
            st["seconds"] += dt
            st["cpu_seconds"] += dc
            st["tokens"] += int(b["attention_mask"].sum())
            st["padded_tokens"] += int(b["attention_mask"].numel())
            st["steps"] += 1
            st["step_seconds"].append(round(dt, 2))
    for st in stats.values():
        st["seconds"] = round(st["seconds"], 2)
        st["cpu_seconds"] = round(st["cpu_seconds"], 2)
        st["tokens_per_s"] = round(st["tokens"] / st["seconds"], 2)
        st["tokens_per_cpu_s"] = round(st["tokens"] / st["cpu_seconds"], 2)
        st["padding_share"] = round(1 - st["tokens"] / st["padded_tokens"], 4)
    return {**cell, "device": str(dev), "threads_used": torch.get_num_threads(), "load_avg_end": os.getloadavg()[0],
            "peak_mem_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1) if dev.type != "cuda" else round(torch.cuda.max_memory_allocated() / 2**20, 1),
            "plain": stats["plain"], "grouped": stats["grouped"], "tokens_per_s": stats["grouped"]["tokens_per_s"]}


def spawn(cell: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(cell)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{") and '"tokens_per_s"' in ln]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"worker failed ({cell}):\n{tail}")
    return json.loads(lines[-1])


# ------------------------------------------------------------------ main ---


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        cell = json.loads(args.worker)
        print(json.dumps(run_padding(cell) if cell.get("mode") == "padding" else run_cell(cell)), flush=True)
        return 0
    import torch
    import transformers

    from tripost.student.load import resolve_model_dir
    from tripost.student.spec import parse_spec

    if args.quick:
        args.steps, args.examples, args.batch_size = 1, 8, 4
    resolve_model_dir(parse_spec(args.student))  # convert the embedded GGUF once, outside the timings
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    base = {"student": args.student, "batch_size": args.batch_size, "seed": args.seed, "threads": args.threads,
            "gradient_checkpointing": args.gradient_checkpointing}
    t_start = time.perf_counter()

    rows = realistic_rows(args.examples, args.seed)
    kinds = {k: rows["kind"].count(k) for k in ("improvement", "direct", "gold")}

    prec = []
    for p in precisions:
        print(f"[precision] {p} ...", file=sys.stderr, flush=True)
        prec.append(spawn({**base, "precision": p, "grouped": True, "steps": args.steps, "examples": args.batch_size * args.steps}))

    print("[padding] plain vs grouped, alternating ...", file=sys.stderr, flush=True)
    pad = spawn({**base, "mode": "padding", "precision": args.pad_precision, "examples": args.examples})
    speedup = pad["grouped"]["tokens_per_s"] / pad["plain"]["tokens_per_s"]
    speedup_cpu = pad["grouped"]["tokens_per_cpu_s"] / pad["plain"]["tokens_per_cpu_s"]
    total_s = time.perf_counter() - t_start

    cmd = "HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_train.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    result = {
        "command": cmd.strip(),
        "machine": {
            "platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "settings": {**base, "steps": args.steps, "examples": args.examples, "pad_precision": args.pad_precision, "quick": args.quick},
        "buffer_mix": kinds,
        "precisions": prec,
        "padding": {**pad, "speedup_tokens_per_s": round(speedup, 3), "speedup_tokens_per_cpu_s": round(speedup_cpu, 3), "target": TARGET, "met": speedup >= TARGET},
        "total_seconds": round(total_s, 1),
    }
    table = render_table(result)
    print(table)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(render_md(result, table))
    return 0


def render_table(r: dict) -> str:
    st = r["settings"]
    gc = "gradient checkpointing" if st["gradient_checkpointing"] else "no checkpointing"
    out = [f"precisions ({st['student']}, batch {st['batch_size']}, length-grouped, {gc}, {st['steps']} steps each)"]
    out.append(f"{'precision':10s} {'tokens/s':>9s} {'tok/cpu-s':>10s} {'s/step':>7s} {'peak MiB':>9s} {'model MiB':>10s} {'trainable':>10s}")
    for c in r["precisions"]:
        label = {"fp32": "fp32 LoRA", "bf16": "bf16 LoRA", "nf4": "QLoRA nf4"}.get(c["precision"], c["precision"])
        model = f"{c['model_rss_mib']:.0f}" if "model_rss_mib" in c else "-"
        out.append(f"{label:10s} {c['tokens_per_s']:9.1f} {c['tokens_per_cpu_s']:10.1f} {c['s_per_step']:7.2f} {c['peak_mem_mib']:9.0f} {model:>10s} {c['trainable_params']:10d}")
    pad = r["padding"]
    out.append("")
    out.append(f"padding ({pad['precision']}, one epoch of {st['examples']} examples each way, batch {st['batch_size']}, steps alternating; mix {r['buffer_mix']})")
    out.append(f"{'batches':10s} {'tokens/s':>9s} {'tok/cpu-s':>10s} {'seconds':>8s} {'real tok':>9s} {'slots':>7s} {'padding':>8s}")
    for name in ("plain", "grouped"):
        c = pad[name]
        out.append(f"{name:10s} {c['tokens_per_s']:9.1f} {c['tokens_per_cpu_s']:10.1f} {c['seconds']:8.1f} {c['tokens']:9d} {c['padded_tokens']:7d} {100 * c['padding_share']:7.1f}%")
    out.append(f"length-grouped / plain padded: {pad['speedup_tokens_per_s']:.2f}x real tokens/s by wall clock, {pad['speedup_tokens_per_cpu_s']:.2f}x by CPU time "
               f"(target >= {pad['target']}x: {'met' if pad['met'] else 'NOT met'})")
    return "\n".join(out)


def render_md(r: dict, table: str) -> str:
    m = r["machine"]
    where = m["cuda"] or f"CPU only, {m['cpu_count']} cores"
    mem = r["precisions"][0]["mem_kind"] if r["precisions"] else "peak RSS"
    return f"""# Training benchmark (weighted SFT)

Made by:

```
{r['command']}
```

Machine: {m['platform']}, {where}; Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}. Total run time {r['total_seconds']:.0f} s.

```
{table}
```

- tokens/s counts real (non-pad) tokens, prompt included, per second of optimizer steps (an untimed warm-up
  forward/backward runs first in every worker). "tok/cpu-s" divides by the worker's CPU time instead (all its
  threads together): on a shared machine it moves less with other processes' load than wall-clock time does.
  The precision cells run one after another, so their wall-clock rates also carry the load of their moment
  (the load average at the end of each cell is in the JSON).
- Memory is the {mem} of the worker process that ran the cell (one fresh process per cell); "model MiB" is the
  RSS right after loading the model with its adapter, before training. On CPU the peak RSS is mostly glibc's
  heap holding freed blocks, not live tensors: the tensors kept for backward are ~0.1 GiB per 1000 tokens with
  gradient checkpointing, and with `MALLOC_MMAP_THRESHOLD_=65536` (large blocks go back to the system at once)
  an 8x512-token fp32 step peaked at ~2 GiB instead of ~11 GiB, for ~35% more time.
- "plain" = random batches padded to the longest example of each batch; "grouped" = `LengthBucketSampler`
  (tripost.train): batches of similar length in random order. Same examples, one model, the two kinds of step
  alternating, so a shared machine's load falls on both alike; "tok/cpu-s" divides by the worker's CPU time.
- The buffer mix is TriPosT's 1.5 : 1 : 1 (improvement : direct : gold) over the four generated families;
  improvement trajectories carry 1-3 edits.

Raw numbers: [train.json](train.json).
"""


if __name__ == "__main__":
    raise SystemExit(main())
