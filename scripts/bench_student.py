#!/usr/bin/env python
"""Benchmark sampling from the student against the machine's ceiling, plain `generate` and llama.cpp batched.

1. fixed work: distinct arithmetic prompts through the chat template, nucleus
   sampling (temperature 0.7, top-p 0.95), exactly `--new-tokens` new tokens
   per sequence (ignore_eos), one call per cell after a warm-up. Cells: the
   static path (plain transformers `generate` on length-sorted batches, at
   the default batch: the peer on the same prompts and sampling) and the
   continuous engine (tripost.student.engine) at several batch sizes; the
   default batch is marked. Generated tokens/s counts the whole call,
   prefill included. The ceiling (scripts/ceiling.py): this machine's best
   matmul rate in the student's precision on a decode step's shape (default
   batch x 576 x 1536) over 2 x 134.5 M FLOP a token.
2. real work: one attempt per problem for `--real-problems` problems of
   arithmetic and word_sorting (small preset), temperature 0.7, up to 192
   new tokens, stopping at EOS: what collection does. Static vs continuous on
   the same prompts; answers end at different lengths here, which is where
   continuous batching pays.
3. llama.cpp batched: the same shipped GGUF through `llama-server` with as
   many parallel slots as the default batch, the fixed-work prompts all sent
   at once with the same sampling (bench-only: `bash scripts/build_llamacpp.sh`
   builds it from the PyPI sdist of llama-cpp-python). Where it is not built,
   the bench says so and goes on.
4. agreement: greedy text of the continuous engine at the default batch vs
   at batch 7 (another batch composition) in the student's precision; the
   same seeded sampling call twice; and, with `--bf16-check N`, greedy text in
   bf16 vs fp32 on N problems (slow where bf16 is emulated).
5. load: cold (GGUF conversion into an empty cache) vs cached.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_student.py \\
        --json docs/benchmarks/student.json --md docs/benchmarks/student.md

Targets (issue 31), measured in one run: at the default batch, >= 50% of the
sampling ceiling, >= 2x plain `generate`, and above llama.cpp batched; the
same seeded call twice gives the same samples.
"""

from __future__ import annotations

import argparse
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
# OpenMP's wait setting is tripost's default (tripost/__init__.py) unless the
# user set one. llama.cpp runs in its own process with the environment as the
# user gave it (USER_OMP), not with tripost's default.
OMP_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
USER_OMP = {k: os.environ[k] for k in OMP_VARS if k in os.environ}

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

TARGET_FRACTION = 0.5  # of the sampling ceiling
TARGET_VS_GENERATE = 2.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--student", default="smollm2-135m")
    p.add_argument("--precision", default="auto", help="student precision (default auto: bf16 where the device computes it fast)")
    p.add_argument("--batches", default="32,64,128", help="continuous-engine batch sizes (the default batch is always added)")
    p.add_argument("--static-batch", type=int, default=None, help="batch of the static path, plain `generate` (default: the engine's default batch)")
    p.add_argument("--new-tokens", type=int, default=128, help="new tokens per sequence in the fixed-work cells")
    p.add_argument("--real-problems", type=int, default=256, help="problems in the real-work cells")
    p.add_argument("--agreement-problems", type=int, default=64)
    p.add_argument("--bf16-check", type=int, default=0, metavar="N", help="greedy bf16 vs fp32 agreement on N problems (0: skip)")
    p.add_argument("--no-llamacpp", action="store_true")
    p.add_argument("--llamacpp-server", default=None, help="llama-server binary (default: $TRIPOST_LLAMACPP_SERVER or scripts/build_llamacpp.sh's)")
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


def llamacpp_server_path(given: str | None) -> Path | None:
    """llama-server from --llamacpp-server, $TRIPOST_LLAMACPP_SERVER, or where
    scripts/build_llamacpp.sh leaves it."""
    import glob

    for cand in [given, os.environ.get("TRIPOST_LLAMACPP_SERVER")]:
        if cand:
            return Path(cand)
    cache = os.environ.get("TRIPOST_LLAMACPP_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tripost", "llamacpp")
    found = sorted(glob.glob(os.path.join(cache, "*", "build", "bin", "llama-server")))
    return Path(found[-1]) if found else None


def llamacpp_batched(server: Path | None, gguf: Path, prompts: list[str], new_tokens: int, slots: int) -> dict:
    """llama.cpp decoding many sequences at once: `llama-server` with `slots`
    parallel slots (continuous batching), every prompt sent at the same time
    with the same sampling (temperature 0.7, top-p 0.95, every other sampler
    off, EOS ignored, `new_tokens` each). Generated tokens over the wall time
    of the whole burst, prefill included, as the engine's cells count it. The
    server runs with the user's OpenMP setting and all CPU threads, as a
    llama.cpp user would run it; its weights are the shipped Q4_1 GGUF itself."""
    import socket
    import urllib.error
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    if server is None or not server.is_file():
        return {"tokens_per_s": None, "note": "llama-server not built (bash scripts/build_llamacpp.sh, or --llamacpp-server PATH)"}
    env = {k: v for k, v in os.environ.items() if k not in OMP_VARS}
    env.update(USER_OMP)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    threads = str(os.cpu_count())
    cmd = [str(server), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "-np", str(slots), "-c", str(slots * 512),
           "-t", threads, "-tb", threads, "--no-webui"]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.time() + 120
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    last = (log.read().decode(errors="replace").strip().splitlines() or ["no output"])[-1]
                    return {"tokens_per_s": None, "note": f"llama-server exited ({last})"}
                try:
                    with urllib.request.urlopen(url + "/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.time() > deadline:
                    return {"tokens_per_s": None, "note": "llama-server did not come up in 120 s"}
                time.sleep(0.5)

            def complete(i_prompt: tuple[int, str], n: int = new_tokens) -> int:
                i, prompt = i_prompt
                body = {"prompt": prompt, "n_predict": n, "temperature": 0.7, "top_p": 0.95, "top_k": 0, "min_p": 0.0,
                        "typical_p": 1.0, "repeat_penalty": 1.0, "ignore_eos": True, "seed": i, "cache_prompt": False}
                req = urllib.request.Request(url + "/completion", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=3600) as r:
                    return int(json.loads(r.read())["tokens_predicted"])

            complete((0, prompts[0]), 8)  # warm-up
            with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
                t = time.perf_counter()
                tokens = sum(pool.map(complete, enumerate(prompts)))
                seconds = time.perf_counter() - t
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"tokens_per_s": round(tokens / seconds, 1), "tokens": tokens, "seconds": round(seconds, 2), "slots": slots,
            "note": f"llama-server, {slots} parallel slots, {threads} threads, Q4_1 GGUF, prefill included, own process"}


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

    from ceiling import student_ceiling

    if args.static_batch is None:
        args.static_batch = DEFAULT_BATCH
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

    default = next(c for c in fixed if c.get("default")) if not args.quick else fixed[-1]
    static = fixed[0]
    llama = {"tokens_per_s": None, "note": "skipped (--no-llamacpp)"}
    if not args.no_llamacpp and spec.kind in ("embedded", "gguf"):
        gguf = find_embedded_gguf() if spec.kind == "embedded" else spec.path
        llama = llamacpp_batched(llamacpp_server_path(args.llamacpp_server), Path(gguf), fixed_prompts[: default["batch"]],
                                 args.new_tokens, default["batch"])
        print(f"llama.cpp batched: {llama['tokens_per_s']} tok/s ({llama['note']})", file=sys.stderr, flush=True)
    result["llamacpp"] = llama
    dtype = next(p.dtype for p in student.model.parameters() if p.is_floating_point())
    result["ceiling"] = student_ceiling(args.student, dtype, default["batch"], trained=False)
    ceiling = result["ceiling"]["ceiling_tok_s"]
    tps = default["tokens_per_s"]
    result["summary"] = {
        "machine": result["machine"],
        "precision": student.precision,
        "default_batch": default["batch"],
        "default_tok_s": tps,
        "ceiling_tok_s": ceiling,
        "fraction_of_ceiling": round(tps / ceiling, 3),
        "generate_tok_s": static["tokens_per_s"],
        "vs_generate": round(tps / static["tokens_per_s"], 2),
        "llamacpp_batched_tok_s": llama["tokens_per_s"],
        "llamacpp_note": llama["note"],
        "real_work_speedup": round(real[1]["tokens_per_s"] / real[0]["tokens_per_s"], 2),
        "same_call_same_samples": agreement["sampling_same_call_twice"] == 1.0,
        "targets": {
            "ge_half_of_ceiling": tps >= TARGET_FRACTION * ceiling,
            "ge_2x_generate": tps >= TARGET_VS_GENERATE * static["tokens_per_s"],
            "above_llamacpp_batched": (tps > llama["tokens_per_s"]) if llama["tokens_per_s"] else None,
            "same_call_same_samples": agreement["sampling_same_call_twice"] == 1.0,
        },
    }
    result["machine"]["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    result["total_seconds"] = round(time.perf_counter() - t_start, 1)
    table = render_table(result)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.md:
        from tripost.fileio import atomic_write_page

        atomic_write_page(args.md, render_md(result, table))  # a hand-written "## Reading" below the tables is kept
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
    lines.append(f"llama.cpp batched: {ll['tokens_per_s'] if ll['tokens_per_s'] is not None else 'n/a'} tok/s ({ll['note']})")
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
    c = r["ceiling"]
    lines.append(f"ceiling: {c['matmul_gflops']:.0f} GFLOP/s ({c['matmul_dtype']} matmul {'x'.join(map(str, c['matmul_shape']))}) / "
                 f"{c['flop_per_token'] / 1e9:.2f} GFLOP a token = {sm['ceiling_tok_s']:.0f} tok/s")
    lines.append(f"default (continuous, batch {sm['default_batch']}): {sm['default_tok_s']:.1f} tok/s = {100 * sm['fraction_of_ceiling']:.0f}% of the ceiling, "
                 f"{sm['vs_generate']:.2f}x plain generate; real work {sm['real_work_speedup']:.2f}x")

    def verdict(ok):
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    lines.append(f"targets: >= {100 * TARGET_FRACTION:.0f}% of ceiling: {verdict(t['ge_half_of_ceiling'])}; >= {TARGET_VS_GENERATE:.0f}x generate: "
                 f"{verdict(t['ge_2x_generate'])}; above llama.cpp batched: {verdict(t['above_llamacpp_batched'])}; "
                 f"same call, same samples: {verdict(t['same_call_same_samples'])}")
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
