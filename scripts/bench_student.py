#!/usr/bin/env python
"""Benchmark sampling from the student: the continuous engine against today's static path and llama.cpp.

1. fixed work: distinct arithmetic prompts through the chat template, nucleus
   sampling (temperature 0.7, top-p 0.95), exactly `--new-tokens` new tokens
   per sequence (ignore_eos), one call per cell after a warm-up. Cells: the
   static path (transformers `generate` on length-sorted batches, the engine
   before issue 15, at its old default batch 32) and the continuous engine
   (tripost.student.engine) at several batch sizes; the default batch is
   marked. Generated tokens/s counts the whole call, prefill included.
2. real work: one attempt per problem for `--real-problems` problems of
   arithmetic and word_sorting (small preset), temperature 0.7, up to 192
   new tokens, stopping at EOS: what collection does. Static vs continuous on
   the same prompts; answers end at different lengths here, which is where
   continuous batching pays.
3. llama.cpp: the same shipped GGUF through llama-cpp-python (a bench-only
   optional dependency: `pip install llama-cpp-python`, built from source),
   one stream, `--new-tokens` tokens with EOS banned, all CPU threads. Where it
   is not installed, the bench says so and goes on.
4. agreement: greedy text of the continuous engine at the default batch vs
   at batch 7 (another batch composition) in the student's precision; the
   same seeded sampling call twice; and, with `--bf16-check N`, greedy text in
   bf16 vs fp32 on N problems (slow where bf16 is emulated).
5. load: cold (GGUF conversion into an empty cache) vs cached.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_student.py \\
        --json docs/benchmarks/student.json --md docs/benchmarks/student.md

Targets (issue 15), measured in one run: >= 1,000 generated tok/s at the
default batch with sampling on, and >= 8x llama.cpp single-stream.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Before torch loads libgomp (see tripost/__init__.py): spinning OpenMP
# threads stall badly whenever anything else shares the CPU. llama.cpp runs
# in its own process with the environment as the user gave it (USER_OMP).
USER_OMP = os.environ.get("OMP_WAIT_POLICY")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_TOK_S = 1000.0
TARGET_VS_LLAMACPP = 8.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--student", default="smollm2-135m")
    p.add_argument("--precision", default="auto", help="student precision (default auto: bf16 where the device computes it fast)")
    p.add_argument("--batches", default="32,64,128", help="continuous-engine batch sizes (the default batch is always added)")
    p.add_argument("--static-batch", type=int, default=32, help="batch of the static path (its old default: 32)")
    p.add_argument("--new-tokens", type=int, default=128, help="new tokens per sequence in the fixed-work cells")
    p.add_argument("--real-problems", type=int, default=256, help="problems in the real-work cells")
    p.add_argument("--agreement-problems", type=int, default=64)
    p.add_argument("--bf16-check", type=int, default=0, metavar="N", help="greedy bf16 vs fp32 agreement on N problems (0: skip)")
    p.add_argument("--no-llamacpp", action="store_true")
    p.add_argument("--no-cold", action="store_true", help="skip the cold (conversion) load")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    p.add_argument("--json", default=None, help="write results here")
    p.add_argument("--md", default=None, help="write a Markdown page with the table and the command here")
    return p.parse_args()


def timed(fn):
    t = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t


def prompts_for(student, families, n, split="train", seed=0):
    from tripost.student import build_prompts
    from tripost.tasks import get_task, sample_problems

    problems = []
    for k, fam in enumerate(families):
        m = n // len(families) + (1 if k < n % len(families) else 0)
        problems += sample_problems(get_task(fam), split=split, subset="seen", preset="small", n=m, seed=seed)
    return build_prompts(student.tokenizer, [p.question for p in problems])


def run_cell(student, prompts, params, engine, batch):
    from tripost.student.generate import LocalBackend

    backend = LocalBackend(student, batch_size=batch, engine=engine)
    out, seconds = timed(lambda: backend.generate(prompts, params))
    tokens = sum(g.n_tokens for r in out for g in r)
    cell = {"engine": engine, "batch": batch, "sequences": len(prompts) * params.n, "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1)}
    st = backend.last_stats.engine
    if st is not None:
        cell.update(slots=st.slots, decode_steps=st.steps, prefills=st.prefills, compactions=st.compactions,
                    prefill_tokens=st.prefill_tokens, prompt_tokens=st.prompt_tokens)
    return cell, out


def llamacpp_single(gguf: Path, prompt: str, new_tokens: int) -> tuple[float | None, str]:
    """Generated tok/s of llama.cpp, one stream, EOS banned; (None, why) where it
    cannot run. Measured in a fresh process: in this one torch's OpenMP worker
    threads, still spinning after the engine's cells, took the cores from
    llama.cpp's own threads, and tripost's OMP_WAIT_POLICY=PASSIVE makes its
    OpenMP threads sleep between the many small kernels of one token: 16 tok/s
    vs 74 with llama.cpp's own default, same prompt. So: a fresh process with
    the user's OpenMP setting, as a llama.cpp user would run it."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if USER_OMP is not None:
        env["OMP_WAIT_POLICY"] = USER_OMP
    # The function's source alone: importing this module would set PASSIVE again.
    code = (
        "from __future__ import annotations\nimport json, os, sys, time\nfrom pathlib import Path\n"
        + inspect.getsource(_llamacpp_here)
        + "\nprint(json.dumps(_llamacpp_here(Path(sys.argv[1]), sys.stdin.read(), int(sys.argv[2]))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(gguf), str(new_tokens)],
                          input=prompt, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"llama.cpp process failed ({last})"
    tps, note = json.loads(proc.stdout.strip().splitlines()[-1])
    return tps, note


def _llamacpp_here(gguf: Path, prompt: str, new_tokens: int) -> tuple[float | None, str]:
    try:
        from llama_cpp import Llama
    except ImportError as e:
        return None, f"llama-cpp-python is not installed ({e.__class__.__name__}); pip install llama-cpp-python to measure it"
    try:
        llm = Llama(model_path=str(gguf), n_ctx=1024, n_threads=os.cpu_count(), n_batch=512, verbose=False, seed=0)
        eos = llm.token_eos()
        llm.create_completion(prompt, max_tokens=8, temperature=0.7, top_p=0.95, logit_bias={eos: -100.0})  # warm-up
        best = 0.0
        for _ in range(2):
            t = time.perf_counter()
            out = llm.create_completion(prompt, max_tokens=new_tokens, temperature=0.7, top_p=0.95, logit_bias={eos: -100.0})
            seconds = time.perf_counter() - t
            best = max(best, out["usage"]["completion_tokens"] / seconds)
        return round(best, 1), f"llama-cpp-python, {os.cpu_count()} threads, one stream, prompt prefill included, own process"
    except Exception as e:  # a build without this CPU's kernels, a GGUF it cannot read
        return None, f"llama.cpp failed: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


def agree(a, b) -> float:
    pairs = [(x.text, y.text) for ra, rb in zip(a, b) for x, y in zip(ra, rb)]
    return round(sum(x == y for x, y in pairs) / len(pairs), 4) if pairs else 0.0


def main() -> int:
    args = parse_args()
    import torch
    import transformers

    from tripost.student import SamplingParams, load_student, parse_spec
    from tripost.student.embedded import find_embedded_gguf
    from tripost.student.generate import DEFAULT_BATCH
    from tripost.student.hardware import compute_profile, machine_card

    if args.quick:
        args.batches, args.new_tokens, args.real_problems, args.agreement_problems, args.static_batch = "8", 16, 16, 8, 8
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    spec = parse_spec(args.student)
    batches = sorted({int(x) for x in args.batches.split(",") if x} | ({DEFAULT_BATCH} if not args.quick else set()))
    result: dict = {
        "student": str(spec),
        "command": "HF_HUB_OFFLINE=1 " + " ".join(shlex.quote(a) for a in [".venv/bin/python", "scripts/bench_student.py", *sys.argv[1:]]),
        # The machine card (tripost machine): CPU, flags, matmul GFLOP/s, the number-format decision.
        "machine": {**machine_card(), "processor": platform.processor() or platform.machine(), "transformers": transformers.__version__,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "settings": {"new_tokens": args.new_tokens, "batches": batches, "static_batch": args.static_batch, "real_problems": args.real_problems},
    }

    if spec.kind in ("embedded", "gguf") and not args.no_cold:
        saved = os.environ.get("TRIPOST_HOME")
        with tempfile.TemporaryDirectory(prefix="tripost-bench-") as home:
            os.environ["TRIPOST_HOME"] = home
            try:
                _, cold = timed(lambda: load_student(spec, "fp32"))
                _, cached = timed(lambda: load_student(spec, "fp32"))
            finally:
                if saved is None:
                    os.environ.pop("TRIPOST_HOME", None)
                else:
                    os.environ["TRIPOST_HOME"] = saved
        result["load"] = {"cold_s": round(cold, 2), "cached_s": round(cached, 2)}
        print(f"load: cold {cold:.2f} s, cached {cached:.2f} s", file=sys.stderr, flush=True)

    student = load_student(spec, args.precision)
    result["precision"] = student.precision
    print(f"student {spec} in {student.precision} ({compute_profile().reason})", file=sys.stderr, flush=True)
    fixed_prompts = prompts_for(student, ("arithmetic",), max(batches + [args.static_batch]))
    params = SamplingParams(n=1, temperature=0.7, top_p=0.95, max_new_tokens=args.new_tokens, seed=0, ignore_eos=True)
    run_cell(student, fixed_prompts[:2], SamplingParams(n=1, max_new_tokens=4, ignore_eos=True), "continuous", 2)  # warm-up

    fixed = []
    cell, _ = run_cell(student, fixed_prompts[: args.static_batch], params, "static", args.static_batch)
    fixed.append(cell)
    print(f"fixed static b={args.static_batch}: {cell['tokens_per_s']} tok/s", file=sys.stderr, flush=True)
    for b in batches:
        cell, _ = run_cell(student, fixed_prompts[:b], params, "continuous", b)
        cell["default"] = b == DEFAULT_BATCH
        fixed.append(cell)
        print(f"fixed continuous b={b}: {cell['tokens_per_s']} tok/s", file=sys.stderr, flush=True)
    result["fixed"] = fixed

    real_prompts = prompts_for(student, ("arithmetic", "word_sorting"), args.real_problems)
    real_params = SamplingParams(n=1, temperature=0.7, top_p=0.95, max_new_tokens=192, seed=0)
    real = []
    for engine, b in (("static", args.static_batch), ("continuous", DEFAULT_BATCH)):
        cell, out = run_cell(student, real_prompts, real_params, engine, b)
        lens = sorted(g.n_tokens for r in out for g in r)
        cell.update(median_len=lens[len(lens) // 2], max_len=lens[-1], min_len=lens[0])
        real.append(cell)
        print(f"real {engine} b={b}: {cell['tokens_per_s']} tok/s, {cell['seconds']} s", file=sys.stderr, flush=True)
    result["real"] = real

    n = args.agreement_problems
    ag_prompts = prompts_for(student, ("arithmetic", "word_sorting"), n, split="val")
    g_params = SamplingParams(n=1, temperature=0.0, max_new_tokens=96)
    _, g_default = run_cell(student, ag_prompts, g_params, "continuous", DEFAULT_BATCH)
    _, g_small = run_cell(student, ag_prompts, g_params, "continuous", 7)
    _, g_static = run_cell(student, ag_prompts, g_params, "static", args.static_batch)
    s_params = SamplingParams(n=2, temperature=0.7, top_p=0.95, max_new_tokens=96, seed=3)
    _, s1 = run_cell(student, ag_prompts, s_params, "continuous", DEFAULT_BATCH)
    _, s2 = run_cell(student, ag_prompts, s_params, "continuous", DEFAULT_BATCH)
    _, s3 = run_cell(student, ag_prompts, s_params, "continuous", 7)
    agreement = {
        "problems": n,
        "greedy_default_vs_batch7": agree(g_default, g_small),
        "greedy_continuous_vs_static": agree(g_default, g_static),
        "sampling_same_call_twice": agree(s1, s2),
        "sampling_default_vs_batch7": agree(s1, s3),
    }
    if args.bf16_check:
        other = "bf16" if student.precision == "fp32" else "fp32"
        st2 = load_student(spec, other)
        k = args.bf16_check
        _, a = run_cell(student, ag_prompts[:k], g_params, "continuous", DEFAULT_BATCH)
        (c2, b), secs = timed(lambda: run_cell(st2, ag_prompts[:k], g_params, "continuous", DEFAULT_BATCH))
        agreement["bf16_vs_fp32_greedy"] = {"problems": k, "agreement": agree(a, b), "other_precision_tok_s": c2["tokens_per_s"]}
        del st2
    result["agreement"] = agreement
    print(f"agreement: {agreement}", file=sys.stderr, flush=True)

    llama = {"tokens_per_s": None, "note": "skipped (--no-llamacpp)"}
    if not args.no_llamacpp:
        gguf = find_embedded_gguf() if spec.kind == "embedded" else spec.path
        tps, note = llamacpp_single(Path(gguf), fixed_prompts[0], args.new_tokens)
        llama = {"tokens_per_s": tps, "note": note}
        print(f"llama.cpp: {tps} tok/s ({note})", file=sys.stderr, flush=True)
    result["llamacpp"] = llama

    default = next(c for c in fixed if c.get("default")) if not args.quick else fixed[-1]
    static = fixed[0]
    result["summary"] = {
        "default_batch": DEFAULT_BATCH,
        "default_tok_s": default["tokens_per_s"],
        "static_tok_s": static["tokens_per_s"],
        "default_vs_static": round(default["tokens_per_s"] / static["tokens_per_s"], 2),
        "real_work_speedup": round(real[1]["tokens_per_s"] / real[0]["tokens_per_s"], 2),
        "llamacpp_single_tok_s": llama["tokens_per_s"],
        "llamacpp_note": llama["note"],
        "targets": {
            "default_ge_1000_tok_s": default["tokens_per_s"] >= TARGET_TOK_S,
            "ge_8x_llamacpp_single": (default["tokens_per_s"] >= TARGET_VS_LLAMACPP * llama["tokens_per_s"]) if llama["tokens_per_s"] else None,
        },
    }
    result["machine"]["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    result["total_seconds"] = round(time.perf_counter() - t_start, 1)
    table = render_table(result)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.md:
        Path(args.md).write_text(render_md(result, table))
    return 0


def render_table(r: dict) -> str:
    s = r["settings"]
    lines = [f"fixed work: {s['new_tokens']} new tokens per sequence (ignore_eos), nucleus sampling, {r['precision']}",
             f"{'engine':11s} {'batch':>5s} {'slots':>5s} {'tok/s':>7s} {'seconds':>8s} {'prefill tok':>11s} {'of prompt tok':>13s}"]
    for c in r["fixed"]:
        mark = " (default)" if c.get("default") else ""
        lines.append(f"{c['engine']:11s} {c['batch']:5d} {c.get('slots', c['batch']):5d} {c['tokens_per_s']:7.1f} {c['seconds']:8.1f} "
                     f"{c.get('prefill_tokens', '-')!s:>11s} {c.get('prompt_tokens', '-')!s:>13s}{mark}")
    lines.append("")
    lines.append(f"real work: one attempt for each of {s['real_problems']} problems (arithmetic + word_sorting), up to 192 tokens, EOS ends it")
    lines.append(f"{'engine':11s} {'batch':>5s} {'tok/s':>7s} {'seconds':>8s} {'tokens':>7s} {'len min/median/max':>19s}")
    for c in r["real"]:
        lines.append(f"{c['engine']:11s} {c['batch']:5d} {c['tokens_per_s']:7.1f} {c['seconds']:8.1f} {c['tokens']:7d} {c['min_len']:>7d}/{c['median_len']}/{c['max_len']}")
    ll = r["llamacpp"]
    lines.append("")
    lines.append(f"llama.cpp single stream: {ll['tokens_per_s'] if ll['tokens_per_s'] is not None else 'n/a'} tok/s ({ll['note']})")
    a = r["agreement"]
    lines.append(f"agreement on {a['problems']} problems: greedy default batch vs batch 7 {100 * a['greedy_default_vs_batch7']:.1f}%, "
                 f"continuous vs static {100 * a['greedy_continuous_vs_static']:.1f}%; seeded sampling same call twice "
                 f"{100 * a['sampling_same_call_twice']:.1f}%, default batch vs batch 7 {100 * a['sampling_default_vs_batch7']:.1f}%")
    if "bf16_vs_fp32_greedy" in a:
        b = a["bf16_vs_fp32_greedy"]
        lines.append(f"greedy bf16 vs fp32 on {b['problems']} problems: {100 * b['agreement']:.1f}% identical")
    sm = r["summary"]
    t = sm["targets"]
    lines.append("")
    lines.append(f"default (continuous, batch {sm['default_batch']}): {sm['default_tok_s']:.1f} tok/s = {sm['default_vs_static']:.2f}x the static path; "
                 f"real work {sm['real_work_speedup']:.2f}x")
    lines.append(f"targets: >= {TARGET_TOK_S:.0f} tok/s: {'met' if t['default_ge_1000_tok_s'] else 'NOT met'}; >= {TARGET_VS_LLAMACPP:.0f}x llama.cpp: "
                 + ("n/a (no llama.cpp)" if t["ge_8x_llamacpp_single"] is None else ("met" if t["ge_8x_llamacpp_single"] else "NOT met")))
    return "\n".join(lines)


def render_md(r: dict, table: str) -> str:
    m = r["machine"]
    load = f"Load of {r['student']} (fp32): cold (GGUF conversion into an empty cache) {r['load']['cold_s']:.2f} s, cached {r['load']['cached_s']:.2f} s.\n\n" if r.get("load") else ""
    return (
        "# Student benchmark (sampling)\n\n"
        f"Made by:\n\n```\n{r['command']}\n```\n\n"
        f"Machine: {m['platform']}, {m['processor']}, {m['cpus']} CPUs, torch {m['torch']} ({m['torch_threads']} threads), "
        f"transformers {m['transformers']}" + (f", GPU {m['cuda']}" if m["cuda"] else ", no GPU")
        + f". Compute profile: {m['compute_profile']['reason']}. 1-minute load average before / after: "
        f"{m['loadavg_1m_before_after'][0]} / {m['loadavg_1m_before_after'][1]}. Total {r['total_seconds']:.0f} s.\n\n"
        f"```\n{table}\n```\n\n{load}"
        "Raw numbers: [student.json](student.json) (`summary` holds the figures the targets are checked on).\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
