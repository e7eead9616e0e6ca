#!/usr/bin/env python
"""Where the time of one decode step and one training step of the student goes (torch profiler).

1. decode: the continuous engine (tripost.student.engine) samples `--decode-rows`
   arithmetic prompts at once (nucleus sampling, temperature 0.7, top-p 0.95,
   `--decode-tokens` new tokens, EOS banned), after an unprofiled warm-up
   call. The prefill forward is labelled and left out; what remains is the
   decode steps, split into the time inside each kind of kernel and the rest
   (Python, module calls, dispatch: wall time with no kernel running). Twice:
   the decode step through the transformers forward, and the engine's own
   step (tripost.student.fastdecode), which this profile led to.
2. train: the real trainer (tripost.train.prepare_run) on micro-batches of 8
   rows of exactly 256 tokens of the realistic buffer (scripts/bench_train.py's
   rows), the first optimizer step unprofiled; forward, backward and the
   optimizer step, each split the same way.

Kernel time is the profiler's self CPU time of the top-level ATen ops on the
main thread (their OpenMP workers run inside it). Costs are printed per step.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/profile_steps.py \\
        --json docs/benchmarks/profile.json --md docs/benchmarks/profile.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

# Op name -> category; the first matching substring wins (order matters).
CATEGORIES = (
    # top-level aten::matmul is the fast step's attention (q @ k, p @ v); a
    # projection is aten::linear
    ("attention", ("scaled_dot_product", "flash_attention", "softmax", "bmm", "aten::matmul")),
    ("matmul", ("aten::mm", "aten::addmm", "aten::linear")),
    ("norms", ("rms_norm",)),
    ("sampling", ("topk", "sort", "logsumexp", "searchsorted", "cumsum", "argmax")),
    ("loss", ("cross_entropy", "nll_loss", "log_softmax")),
    ("optimizer", ("_fused_adam", "_foreach_", "addcdiv", "addcmul", "lerp", "sqrt")),
    ("copies", ("copy_", "aten::to", "_to_copy", "clone", "cat", "index", "slice_scatter", "contiguous", "masked_fill", "fill_", "zero_")),
    ("elementwise", ("mul", "add", "sub", "div", "pow", "rsqrt", "mean", "silu", "neg", "exp", "where", "sum", "embedding", "_softmax")),
)


def category(name: str) -> str:
    for cat, keys in CATEGORIES:
        if any(k in name for k in keys):
            return cat
    return "other ops"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--student", default="smollm2-135m")
    p.add_argument("--precision", default="auto")
    p.add_argument("--decode-rows", type=int, default=None, help="sequences decoded at once (default: the engine's default batch)")
    p.add_argument("--decode-tokens", type=int, default=128, help="new tokens per sequence in the profiled call (bench_student's fixed work: 128)")
    p.add_argument("--train-steps", type=int, default=3, help="profiled optimizer steps (after one warm-up step)")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-decode", action="store_true")
    p.add_argument("--json", default=None)
    p.add_argument("--md", default=None)
    return p.parse_args()


def _under(ev, label: str) -> bool:
    while ev is not None:
        if ev.name == label:
            return True
        ev = ev.cpu_parent
    return False


def _top_level_ops(events, region: str | None, exclude: str | None = None):
    """ATen ops with no ATen op above them (their children's time is inside
    theirs), inside `region` (a record_function label) and outside `exclude`."""
    out = []
    for ev in events:
        if not ev.name.startswith("aten::") or ev.device_type.name != "CPU":
            continue
        parent, nested = ev.cpu_parent, False
        while parent is not None:
            if parent.name.startswith("aten::"):
                nested = True
                break
            parent = parent.cpu_parent
        if nested or (region and not _under(ev, region)) or (exclude and _under(ev, exclude)):
            continue
        out.append(ev)
    return out


def split(events, region: str | None, wall_us: float, steps: int, exclude: str | None = None) -> dict:
    """Milliseconds per step in each category and the rest (no kernel running)."""
    per: dict[str, float] = defaultdict(float)
    ops: dict[str, float] = defaultdict(float)
    top = _top_level_ops(events, region, exclude)
    for ev in top:
        us = ev.cpu_time_total  # a top-level op: its own time and its children's
        per[category(ev.name)] += us
        ops[ev.name] += us
    kernels = sum(per.values())
    per["Python, modules, dispatch"] = max(0.0, wall_us - kernels)
    ms = {k: round(v / steps / 1000, 2) for k, v in sorted(per.items(), key=lambda kv: -kv[1])}
    heavy = {k: round(v / steps / 1000, 2) for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:12]}
    return {"ms_per_step": round(wall_us / steps / 1000, 2), "split_ms": ms, "top_ops_ms": heavy, "ops_per_step": round(len(top) / steps)}


def profile_decode(args, fast: bool) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from bench_student import prompts_for
    from tripost.student import SamplingParams, load_student, parse_spec
    from tripost.student.engine import ContinuousBatcher

    student = load_student(parse_spec(args.student), args.precision)
    prompts = prompts_for(student, ["arithmetic"], args.decode_rows)
    ids = [student.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    eos = [student.tokenizer.eos_token_id]
    params = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=args.decode_tokens, ignore_eos=True, seed=0)
    engine = ContinuousBatcher(student.model, student.tokenizer, slots=args.decode_rows, fast_decode=fast)
    engine.run(ids[:8], SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=8, ignore_eos=True, seed=0), eos)  # warm-up

    prefill, choose = engine._prefill, engine._choose

    def labelled_prefill(*a, **k):
        with record_function("prefill"):
            return prefill(*a, **k)

    engine._prefill = labelled_prefill
    engine._choose = choose  # sampling ops are told apart by name
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with record_function("engine.run"):
            t0 = time.perf_counter()
            engine.run(ids, params, eos)
            wall = (time.perf_counter() - t0) * 1e6
    events = prof.events()
    prefill_us = sum(ev.cpu_time_total for ev in events if ev.name == "prefill")
    steps = engine.stats.steps
    out = split(events, "engine.run", wall - prefill_us, steps, exclude="prefill")
    rows = args.decode_rows
    out.update(step="tripost.student.fastdecode" if engine.fast_decode else "transformers forward", rows=rows, steps=steps, new_tokens=args.decode_tokens, prefill_ms=round(prefill_us / 1000, 1),
               precision=str(next(student.model.parameters()).dtype).replace("torch.", ""),
               tokens_per_s_decode=round(rows * 1000 / out["ms_per_step"], 1), threads=torch.get_num_threads())
    return out


def profile_train(args) -> dict:
    import datasets
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function
    from transformers import TrainerCallback

    from bench_train import _fixed_length, realistic_rows
    from tripost.train import TrainConfig, prepare_run

    steps = args.train_steps + 1
    # mode "full": what `auto` resolves to for the embedded student on a CPU
    # with room (bench_train's default cells); `auto` decides by free memory,
    # which other processes on a shared machine change.
    cfg = TrainConfig(student=args.student, batch_size=8, epochs=1.0, learning_rate=1e-4, warmup=0.0, mode="full",
                      save_steps=10_000, logging_steps=10_000, progress=False, seed=0)
    ds = _fixed_length(datasets.Dataset.from_dict(realistic_rows(64 * steps, 0)), cfg, 256)
    ds = ds.select(range(8 * steps))
    state = {"prof": None, "t0": 0.0, "wall": 0.0}

    class Profiled(TrainerCallback):
        def on_step_begin(self, a, s, control, **kw):
            if s.global_step == 1:  # the first step is the warm-up
                state["prof"] = profile(activities=[ProfilerActivity.CPU])
                state["prof"].__enter__()
                state["rf"] = record_function("train.steps")
                state["rf"].__enter__()
                state["t0"] = time.perf_counter()

        def on_train_end(self, a, s, control, **kw):
            if state["prof"] is not None:
                state["wall"] = (time.perf_counter() - state["t0"]) * 1e6
                state["rf"].__exit__(None, None, None)
                state["prof"].__exit__(None, None, None)

    with tempfile.TemporaryDirectory() as tmp:
        run = prepare_run(cfg, ds, Path(tmp), callbacks=[Profiled()])
        run.trainer.train()
        setup = run.setup.describe()
    events = state["prof"].events()
    n = args.train_steps
    whole = split(events, "train.steps", state["wall"], n)
    opt_us = sum(ev.cpu_time_total for ev in events if ev.name.startswith("Optimizer.step#"))
    bwd = [ev for ev in _top_level_ops(events, "train.steps") if _under_backward(ev)]
    bwd_us = sum(ev.cpu_time_total for ev in bwd)
    tokens = 8 * 256
    whole.update(rows=8, row_tokens=256, steps=n, setup=setup, threads=torch.get_num_threads(),
                 optimizer_ms=round(opt_us / n / 1000, 2), backward_kernels_ms=round(bwd_us / n / 1000, 2),
                 tokens_per_s=round(tokens * 1000 / whole["ms_per_step"], 1))
    return whole


def _under_backward(ev) -> bool:
    while ev is not None:
        if ev.name.startswith("autograd::engine::evaluate_function"):
            return True
        ev = ev.cpu_parent
    return False


def render(r: dict) -> str:
    lines = []
    for key, title in (("decode_transformers", "decode step"), ("decode", "decode step"), ("train", "training step")):
        d = r.get(key)
        if not d:
            continue
        if key.startswith("decode"):
            head = (f"{title} ({d['step']}): {d['rows']} sequences, {d['precision']}, {d['ms_per_step']} ms a step "
                    f"= {d['tokens_per_s_decode']} tok/s while decoding (prefill {d['prefill_ms']} ms once, left out)")
        else:
            head = (f"{title}: 8 x 256 tokens, {d['setup']}; {d['ms_per_step']} ms a step = {d['tokens_per_s']} tok/s "
                    f"(optimizer {d['optimizer_ms']} ms, backward kernels {d['backward_kernels_ms']} ms)")
        lines += [head + f"; {d['ops_per_step']} top-level kernels a step", f"  {'where':28s} {'ms/step':>8s} {'share':>6s}"]
        for k, v in d["split_ms"].items():
            lines.append(f"  {k:28s} {v:8.2f} {100 * v / d['ms_per_step']:5.1f}%")
        lines.append("  top ops: " + ", ".join(f"{k.replace('aten::', '')} {v}" for k, v in list(d["top_ops_ms"].items())[:6]))
        lines.append("")
    return "\n".join(lines).rstrip()


def main() -> int:
    args = parse_args()
    from tripost.student.engine import DEFAULT_BATCH
    from tripost.student.hardware import machine_card

    if args.decode_rows is None:
        args.decode_rows = DEFAULT_BATCH

    r: dict = {"command": "HF_HUB_OFFLINE=1 " + " ".join(shlex.quote(a) for a in [".venv/bin/python", "scripts/profile_steps.py", *sys.argv[1:]]),
               "machine": machine_card(), "load_avg_before": os.getloadavg()[0]}
    if not args.skip_decode:
        r["decode_transformers"] = profile_decode(args, fast=False)
        r["decode"] = profile_decode(args, fast=True)
    if not args.skip_train:
        r["train"] = profile_train(args)
    r["load_avg_after"] = os.getloadavg()[0]
    table = render(r)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1) + "\n")
    if args.md:
        from tripost.fileio import atomic_write_page

        # a hand-written "## Reading" below the tables is kept
        atomic_write_page(args.md, f"# Profile of one decode step and one training step\n\nMade by:\n\n```\n{r['command']}\n```\n\n```\n{table}\n```\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
