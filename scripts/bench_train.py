#!/usr/bin/env python
"""Benchmark weighted SFT on this machine: today's path, the default setup, and the choices between.

1. throughput: every cell trains the same realistic buffer (the four generated
   families, TriPosT's 1.5 : 1 : 1 kind mix, improvement trajectories with
   1-3 edits) through the real trainer (tripost.train.prepare_run) in a fresh
   worker process, one epoch of `--examples` examples at batch 8. The first
   optimizer step is an untimed warm-up (allocator, lazy kernels, compilation);
   real (non-pad) tokens/s is measured over the rest, and peak memory is the
   worker's (CPU: peak RSS; CUDA: peak allocated). Cells:
     baseline      the trainer before issue 15, as the demo ran it on CPU: fp32
                   LoRA (dropout 0.05), activation checkpointing, padded
                   length-grouped batches (on a CPU with bf16 matrix units also
                   `baseline-bf16`, the bf16 LoRA cell the issue measured)
     default       TrainConfig() as it is now: every "auto" resolved for this
                   device (the setup it chose is printed)
     variants      what the default is made of, one change at a time
     default@8x256 the default on micro-batches of 8 examples of 256 tokens:
                   the memory target's shape
2. learning speed (`--learn`): LoRA vs full fine-tuning (and LoRA without
   dropout) on the same gold rationales (arithmetic + word_sorting, small
   preset) for the same number of steps; held-out weighted loss on unseen
   gold rationales after training, and the seconds it took. The mode default
   is chosen from this, not by habit.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_train.py --learn \
        --json docs/benchmarks/train.json --md docs/benchmarks/train.md

The ceiling (scripts/ceiling.py): this machine's best matmul rate in the
training precision on a micro-batch's shape (8 x 256 rows x 576 x 1536) over
6 x 134.5 M FLOP a trained token. The peer, plain@8x256: a plain full
fine-tuning loop (transformers' own loss, torch AdamW, the same autocast) on
the same rows as default@8x256.

Targets (issue 31), measured in one run: the default setup on the realistic
buffer >= 65% of the training ceiling; peak RSS <= 3 GiB at 8x256.
`--quick` is a smoke run (tiny sizes, no learning section).
"""

from __future__ import annotations

import argparse
import json
import os
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
sys.path.insert(0, str(ROOT / "scripts"))

FAMILIES = ("arithmetic", "word_sorting", "date_understanding", "logical_deduction")
LEARN_FAMILIES = ("arithmetic", "word_sorting")
TARGET_FRACTION = 0.65  # of the training ceiling (scripts/ceiling.py)
TARGET_RSS_MIB = 3 * 1024

# The trainer before issue 15 on a CPU, as scripts/demo.sh ran it.
BASELINE = {"precision": "fp32", "mode": "lora", "lora_dropout": 0.05, "gradient_checkpointing": "on", "packing": "off", "compile": "off"}
VARIANTS = {
    "baseline": BASELINE,
    "baseline-bf16": {**BASELINE, "precision": "bf16"},
    "padded-no-ckpt": {"mode": "lora", "packing": "off", "gradient_checkpointing": "off"},
    "packed": {"mode": "lora", "packing": "on"},
    "default": {},
    "lora-no-dropout": {"mode": "lora", "lora_dropout": 0.0},
    "full": {"mode": "full"},
    "compiled": {"compile": "on"},
}


# Learning-speed cells: name -> (TrainConfig overrides, learning rate).
LEARN_VARIANTS = {
    "lora": ({"mode": "lora"}, 2e-4),
    "lora-lr-1e-3": ({"mode": "lora"}, 1e-3),
    "lora-no-dropout": ({"mode": "lora", "lora_dropout": 0.0}, 2e-4),
    "full": ({"mode": "full"}, 2e-4),
    "full-lr-5e-5": ({"mode": "full"}, 5e-5),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--student", default="smollm2-135m")
    p.add_argument("--cells", default="baseline,padded-no-ckpt,packed,lora-no-dropout,full,default",
                   help=f"throughput cells, comma-separated, from: {', '.join(VARIANTS)} (default@8x256 always runs)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--examples", type=int, default=48, help="examples per throughput cell (one epoch)")
    p.add_argument("--learn", action="store_true", help="also measure learning speed: lora vs full on gold rationales")
    p.add_argument("--learn-cells", default=",".join(LEARN_VARIANTS),
                   help=f"learning cells, comma-separated, from: {', '.join(LEARN_VARIANTS)}")
    p.add_argument("--learn-examples", type=int, default=256, help="gold training examples per learning cell")
    p.add_argument("--learn-eval", type=int, default=64, help="held-out gold examples the learning cells are scored on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, no learning section")
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


def gold_rows(families: tuple[str, ...], split: str, n: int, seed: int) -> dict[str, list]:
    """`n` gold rows (question -> rationale) split evenly over `families`, `small` preset, seen subset."""
    from tripost.buffer import trajectory_text
    from tripost.tasks import get_task, sample_problems

    rows: dict[str, list] = {"prompt": [], "completion": []}
    for k, fam in enumerate(families):
        m = n // len(families) + (1 if k < n % len(families) else 0)
        for p in sample_problems(get_task(fam), split=split, subset="seen", preset="small", n=m, seed=seed):
            rows["prompt"].append(p.question)
            rows["completion"].append(trajectory_text([{"rationale": p.rationale}]))
    return rows


# ---------------------------------------------------------------- worker ---


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib(dev) -> tuple[float, str]:
    import torch

    if dev.type == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**20, 1), "cuda peak allocated"
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "peak RSS"


def run_throughput(cell: dict) -> dict:
    """One throughput measurement, in this (fresh) process."""
    import datasets
    import torch
    from transformers import TrainerCallback

    from tripost.train import TrainConfig, prepare_run

    cfg = TrainConfig(student=cell["student"], batch_size=cell["batch_size"], epochs=1.0, learning_rate=1e-4, warmup=0.0,
                      save_steps=10_000, logging_steps=10_000, progress=False, seed=cell["seed"], **cell["config"])
    rows = realistic_rows(cell["examples"], cell["seed"])
    ds = datasets.Dataset.from_dict(rows)
    fixed = cell.get("fixed_len")

    marks: list[tuple[float, int, int]] = []  # (time, real tokens so far, padded so far) at each step end

    class Clock(TrainerCallback):
        trainer = None

        def on_step_end(self, args, state, control, **kw):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            self.trainer.flush_token_counts()
            tc = self.trainer.token_counts
            marks.append((time.perf_counter(), tc["tokens"], tc["padded"]))

    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if fixed:
            ds = _fixed_length(ds, cfg, fixed)
        run = prepare_run(cfg, ds, Path(tmp), callbacks=[clock])
        load_s = time.perf_counter() - t0
        dev = run.student.device
        clock.trainer = run.trainer
        rss_loaded = _rss_mib()
        cpu0 = time.process_time()
        run.trainer.train()
        cpu_s = time.process_time() - cpu0
    if len(marks) < 2:
        raise SystemExit("throughput cell needs at least 2 optimizer steps (raise --examples)")
    (t1, tok1, pad1), (tn, tokn, padn) = marks[0], marks[-1]
    seconds = tn - t1
    tokens, padded = tokn - tok1, padn - pad1
    peak, kind = _peak_mib(dev)
    return {
        **cell,
        "setup": run.setup.to_dict(),
        "setup_text": run.setup.describe(),
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "load_s": round(load_s, 2),
        "steps_timed": len(marks) - 1,
        "seconds": round(seconds, 3),
        "tokens": tokens,
        "padded_tokens": padded,
        "tokens_per_s": round(tokens / seconds, 2),
        "cpu_seconds": round(cpu_s, 2),  # the whole train() call, the warm-up step included
        "tokens_per_cpu_s": round(tokn / cpu_s, 2),
        "s_per_step": round(seconds / (len(marks) - 1), 3),
        "padding_share": round(1 - tokens / padded, 4) if padded else 0.0,
        "trainable_params": sum(p.numel() for p in run.student.model.parameters() if p.requires_grad),
        "peak_mem_mib": peak,
        "mem_kind": kind,
        "model_rss_mib": round(rss_loaded, 1),
        "load_avg": os.getloadavg()[0],
    }


def _fixed_length(ds, cfg, length: int):
    """Rows whose prompt + completion come to exactly `length` tokens: longer
    realistic rows cut at a character boundary and checked after tokenising."""
    from transformers import AutoTokenizer

    from tripost.student.load import resolve_model_dir
    from tripost.student.prompt import PromptFormat, build_prompt
    from tripost.student.spec import parse_spec
    from tripost.train import tokenize_example

    tok = AutoTokenizer.from_pretrained(str(resolve_model_dir(parse_spec(cfg.student))))
    fmt = PromptFormat()
    rows: dict[str, list] = {"prompt": [], "completion": []}
    for r in ds:
        prompt = build_prompt(tok, r["prompt"], fmt)
        comp = r["completion"]
        ex = tokenize_example(tok, prompt, comp)
        if len(ex) < length:
            continue
        lo, hi = 0, len(comp)  # longest prefix of the completion that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(tokenize_example(tok, prompt, comp[:mid])) <= length:
                lo = mid
            else:
                hi = mid - 1
        if len(tokenize_example(tok, prompt, comp[:lo])) == length:
            rows["prompt"].append(r["prompt"])
            rows["completion"].append(comp[:lo])
    if len(rows["prompt"]) < 2 * cfg.batch_size:
        raise SystemExit(f"only {len(rows['prompt'])} rows reach {length} tokens: raise --examples")
    import datasets

    return datasets.Dataset.from_dict(rows)


def run_plain(cell: dict) -> dict:
    """The peer: a plain full fine-tuning loop on the same 8 x 256-token rows
    as default@8x256 (transformers model, its own loss over every token,
    torch AdamW, bf16 autocast where the CPU has bf16 matrix instructions),
    as a user would write it without tripost; first step untimed."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tripost.student.hardware import compute_profile
    from tripost.student.load import resolve_model_dir
    from tripost.student.prompt import PromptFormat, build_prompt
    from tripost.student.spec import parse_spec
    from tripost.train import TrainConfig, tokenize_example

    torch.manual_seed(cell["seed"])
    cfg = TrainConfig(student=cell["student"], batch_size=cell["batch_size"])
    ds = _fixed_length(datasets.Dataset.from_dict(realistic_rows(cell["examples"], cell["seed"])), cfg, cell["fixed_len"])
    folder = str(resolve_model_dir(parse_spec(cell["student"])))
    tok = AutoTokenizer.from_pretrained(folder)
    rows = [tokenize_example(tok, build_prompt(tok, r["prompt"], PromptFormat()), r["completion"]).input_ids for r in ds]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = compute_profile().bf16
    bs = cell["batch_size"]
    marks = []
    for i in range(0, len(rows) - bs + 1, bs):
        ids = torch.tensor(rows[i : i + bs])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        marks.append((time.perf_counter(), int(ids.numel())))
    if len(marks) < 2:
        raise SystemExit("the plain loop needs at least 2 steps (raise --examples)")
    seconds = marks[-1][0] - marks[0][0]
    tokens = sum(n for _, n in marks[1:])
    peak, kind = _peak_mib(torch.device("cpu"))
    return {**cell, "setup_text": f"plain loop: full fine-tuning, fp32 weights, {'bf16 autocast' if autocast else 'no autocast'}, torch AdamW",
            "steps_timed": len(marks) - 1, "seconds": round(seconds, 3), "tokens": tokens, "padded_tokens": tokens,
            "tokens_per_s": round(tokens / seconds, 2), "s_per_step": round(seconds / (len(marks) - 1), 3), "padding_share": 0.0,
            "tokens_per_cpu_s": None, "peak_mem_mib": peak, "mem_kind": kind}


def run_learning(cell: dict) -> dict:
    """Train on gold rationales, then the held-out weighted loss (same weights as training)."""
    import datasets
    import torch

    from tripost.train import PackedCollator, TrainConfig, prepare_dataset, prepare_run, weighted_causal_lm_loss

    cfg = TrainConfig(student=cell["student"], batch_size=cell["batch_size"], epochs=1.0, learning_rate=cell["learning_rate"], warmup=0.03,
                      save_steps=10_000, logging_steps=10_000, progress=False, seed=cell["seed"], **cell["config"])
    train = datasets.Dataset.from_dict(gold_rows(LEARN_FAMILIES, "train", cell["examples"], cell["seed"]))
    held = datasets.Dataset.from_dict(gold_rows(LEARN_FAMILIES, "test", cell["eval"], cell["seed"] + 1))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = prepare_run(cfg, train, Path(tmp))
        run.trainer.train()
        seconds = time.perf_counter() - t0
        run.trainer.flush_token_counts()
        model = run.student.model
        model.eval()
        ev, _ = prepare_dataset(held, run.student.tokenizer, cfg)
        total = norm = 0.0
        with torch.inference_mode():
            for i in range(0, len(ev), 8):
                b = PackedCollator()([ev[k] for k in range(i, min(i + 8, len(ev)))])
                dev = run.student.device
                loss = weighted_causal_lm_loss(model, b["input_ids"].to(dev), None, b["loss_weights"].to(dev),
                                               position_ids=b["position_ids"].to(dev), packed_seq_lens=b["packed_seq_lens"])
                w = float(b["loss_weights"][:, 1:].sum())
                total += float(loss) * w
                norm += w
    return {**cell, "setup_text": run.setup.describe(), "seconds": round(seconds, 1), "steps": int(run.trainer.state.global_step),
            "tokens": run.trainer.token_counts["tokens"], "heldout_loss": round(total / norm, 4),
            "tokens_per_s": round(run.trainer.token_counts["tokens"] / seconds, 1)}


def spawn(cell: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(cell)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{") and '"tokens_per_s"' in ln]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"worker failed ({cell.get('name')}):\n{tail}")
    return json.loads(lines[-1])


# ------------------------------------------------------------------ main ---


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        cell = json.loads(args.worker)
        run = {"learning": run_learning, "plain": run_plain}.get(cell["kind"], run_throughput)
        print(json.dumps(run(cell)), flush=True)
        return 0
    import torch
    import transformers

    from ceiling import student_ceiling
    from tripost.student.hardware import compute_profile, machine_card
    from tripost.student.load import resolve_model_dir
    from tripost.student.spec import parse_spec

    if args.quick:
        args.examples, args.batch_size, args.learn = 8, 4, False
    resolve_model_dir(parse_spec(args.student))  # convert the embedded GGUF once, outside the timings
    profile = compute_profile()
    card = machine_card()  # measured before the cells, on an otherwise idle machine
    # Training computes in bf16 under autocast where the CPU has bf16 matrix
    # instructions (the default setup); one micro-batch is ~batch x 256 tokens.
    ceiling = student_ceiling(args.student, torch.bfloat16 if profile.bf16 else torch.float32, args.batch_size * 256, trained=True)
    names = [c.strip() for c in args.cells.split(",") if c.strip()]
    unknown = [c for c in names if c not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown cell {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    learn_names = [c.strip() for c in args.learn_cells.split(",") if c.strip()]
    unknown = [c for c in learn_names if c not in LEARN_VARIANTS]
    if unknown:
        raise SystemExit(f"unknown learning cell {unknown[0]!r}; choose from {', '.join(LEARN_VARIANTS)}")
    if profile.bf16 and "baseline" in names and "baseline-bf16" not in names:
        names.insert(names.index("baseline") + 1, "baseline-bf16")
    if "default" not in names:
        names.append("default")
    base = {"kind": "throughput", "student": args.student, "batch_size": args.batch_size, "seed": args.seed, "examples": args.examples}
    t_start = time.perf_counter()
    cells = []
    for name in names:
        print(f"[throughput] {name} ...", file=sys.stderr, flush=True)
        cells.append(spawn({**base, "name": name, "config": VARIANTS[name]}))
        print(f"  {cells[-1]['tokens_per_s']:.1f} real tok/s, peak {cells[-1]['peak_mem_mib']:.0f} MiB: {cells[-1]['setup_text']}", file=sys.stderr, flush=True)
    print("[throughput] default@8x256 ...", file=sys.stderr, flush=True)
    fixed = spawn({**base, "name": "default@8x256", "config": {}, "fixed_len": 256, "examples": max(args.examples, 4 * args.batch_size) * 3})
    print("[throughput] checkpointed@8x256 (the memory-lean setting) ...", file=sys.stderr, flush=True)
    lean = spawn({**base, "name": "checkpointed@8x256", "config": {"gradient_checkpointing": "on"}, "fixed_len": 256,
                  "examples": max(args.examples, 4 * args.batch_size) * 3})
    print("[throughput] plain@8x256 (the peer: a plain full fine-tuning loop) ...", file=sys.stderr, flush=True)
    plain = spawn({**base, "kind": "plain", "name": "plain@8x256", "config": {}, "fixed_len": 256, "examples": max(args.examples, 4 * args.batch_size) * 3})
    learning = []
    if args.learn:
        for name in learn_names:
            conf, lr = LEARN_VARIANTS[name]
            print(f"[learning] {name} ...", file=sys.stderr, flush=True)
            learning.append(spawn({"kind": "learning", "name": name, "student": args.student, "batch_size": args.batch_size, "seed": args.seed,
                                   "examples": args.learn_examples, "eval": args.learn_eval, "learning_rate": lr, "config": conf}))
            print(f"  held-out loss {learning[-1]['heldout_loss']:.4f} after {learning[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    total_s = time.perf_counter() - t_start

    by = {c["name"]: c for c in cells}
    default, baseline = by["default"], by["baseline"] if "baseline" in by else None
    speedup = default["tokens_per_s"] / baseline["tokens_per_s"] if baseline else None
    cmd = "HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_train.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    result = {
        "command": cmd.strip(),
        "summary": {
            "machine": card,
            "default_real_tok_s": default["tokens_per_s"],
            "ceiling_tok_s": ceiling["ceiling_tok_s"],
            "fraction_of_ceiling": round(default["tokens_per_s"] / ceiling["ceiling_tok_s"], 3),
            "default_8x256_tok_s": fixed["tokens_per_s"],
            "fraction_of_ceiling_8x256": round(fixed["tokens_per_s"] / ceiling["ceiling_tok_s"], 3),
            "plain_loop_8x256_tok_s": plain["tokens_per_s"],
            "vs_plain_loop_8x256": round(fixed["tokens_per_s"] / plain["tokens_per_s"], 2),
            "plain_loop_peak_rss_mib": plain["peak_mem_mib"],
            "baseline_real_tok_s": baseline["tokens_per_s"] if baseline else None,
            "speedup": round(speedup, 2) if speedup else None,
            "default_peak_rss_mib": fixed["peak_mem_mib"],
            "default_setup": default["setup_text"],
            # gradient_checkpointing=on, the default otherwise: what memory costs in speed.
            "checkpointed_8x256_tok_s": lean["tokens_per_s"],
            "checkpointed_peak_rss_mib": lean["peak_mem_mib"],
            "targets": {
                "default_ge_65pct_of_ceiling": default["tokens_per_s"] >= TARGET_FRACTION * ceiling["ceiling_tok_s"],
                "peak_rss_le_3gib_at_8x256": fixed["peak_mem_mib"] <= TARGET_RSS_MIB,
                "peak_rss_le_3gib_at_8x256_checkpointed": lean["peak_mem_mib"] <= TARGET_RSS_MIB,
            },
        },
        "ceiling": ceiling,
        # The machine card (tripost machine): CPU, flags, matmul GFLOP/s, the number-format decision.
        "machine": {**card, "cpu_count": os.cpu_count(), "transformers": transformers.__version__,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "settings": {**base, "learn_examples": args.learn_examples, "learn_eval": args.learn_eval, "quick": args.quick},
        "throughput": cells,
        "fixed_8x256": fixed,
        "checkpointed_8x256": lean,
        "plain_8x256": plain,
        "learning": learning,
        "total_seconds": round(total_s, 1),
    }
    table = render_table(result)
    print(table)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.md:
        from tripost.fileio import atomic_write_page

        atomic_write_page(args.md, render_md(result, table))  # a hand-written "## Reading" below the tables is kept
    return 0


def render_table(r: dict) -> str:
    st = r["settings"]
    out = [f"throughput ({st['student']}, one epoch of {st['examples']} realistic buffer examples at batch {st['batch_size']}, first step untimed)"]
    out.append(f"{'cell':18s} {'real tok/s':>10s} {'tok/cpu-s':>10s} {'s/step':>7s} {'padding':>8s} {'peak MiB':>9s}  setup")
    for c in r["throughput"] + [r["fixed_8x256"]] + ([r["checkpointed_8x256"]] if "checkpointed_8x256" in r else []) + [r["plain_8x256"]]:
        cpu_s = f"{c['tokens_per_cpu_s']:10.1f}" if c.get("tokens_per_cpu_s") is not None else f"{'-':>10s}"
        out.append(f"{c['name']:18s} {c['tokens_per_s']:10.1f} {cpu_s} {c['s_per_step']:7.2f} {100 * c['padding_share']:7.1f}% {c['peak_mem_mib']:9.0f}  {c['setup_text']}")
    s = r["summary"]
    t = s["targets"]
    c = r["ceiling"]
    out.append(f"ceiling: {c['matmul_gflops']:.0f} GFLOP/s ({c['matmul_dtype']} matmul {'x'.join(map(str, c['matmul_shape']))}) / "
               f"{c['flop_per_token'] / 1e9:.2f} GFLOP a trained token = {s['ceiling_tok_s']:.0f} tok/s")
    if s["speedup"] is not None:
        out.append(f"default / baseline: {s['speedup']:.2f}x real tokens/s")
    out.append(f"default: {s['default_real_tok_s']:.1f} real tok/s = {100 * s['fraction_of_ceiling']:.0f}% of the ceiling "
               f"(target >= {100 * TARGET_FRACTION:.0f}%: {'met' if t['default_ge_65pct_of_ceiling'] else 'NOT met'}); at 8x256 "
               f"{s['default_8x256_tok_s']:.1f} = {100 * s['fraction_of_ceiling_8x256']:.0f}%, {s['vs_plain_loop_8x256']:.2f}x the plain loop")
    out.append(f"peak RSS at 8x256 {s['default_peak_rss_mib']:.0f} MiB (target <= {TARGET_RSS_MIB}: {'met' if t['peak_rss_le_3gib_at_8x256'] else 'NOT met'}; "
               f"the plain loop {s['plain_loop_peak_rss_mib']:.0f} MiB)")
    if "checkpointed_peak_rss_mib" in s:
        out.append(f"with gradient_checkpointing=on: peak RSS {s['checkpointed_peak_rss_mib']:.0f} MiB "
                   f"({'met' if t['peak_rss_le_3gib_at_8x256_checkpointed'] else 'NOT met'}) at {s['checkpointed_8x256_tok_s']:.1f} real tok/s")
    if r["learning"]:
        out.append("")
        out.append(f"learning speed (gold rationales of {', '.join(LEARN_FAMILIES)}, {st['learn_examples']} examples, 1 epoch; held-out loss on {st['learn_eval']})")
        out.append(f"{'cell':18s} {'lr':>7s} {'steps':>6s} {'seconds':>8s} {'tok/s':>7s} {'held-out loss':>14s}")
        for c in r["learning"]:
            out.append(f"{c['name']:18s} {c['learning_rate']:7.0e} {c['steps']:6d} {c['seconds']:8.0f} {c['tokens_per_s']:7.1f} {c['heldout_loss']:14.4f}")
    return "\n".join(out)


def render_md(r: dict, table: str) -> str:
    m = r["machine"]
    where = m["cuda"] or f"CPU only, {m['cpu_count']} cores"
    return f"""# Training benchmark (weighted SFT)

Made by:

```
{r['command']}
```

Machine: {m['platform']}, {where}; Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}.
Compute profile: {m['compute_profile']['reason']}. Total run time {r['total_seconds']:.0f} s.

```
{table}
```

Raw numbers: [train.json](train.json) (`summary` holds the figures the targets are checked on).
"""


if __name__ == "__main__":
    raise SystemExit(main())
