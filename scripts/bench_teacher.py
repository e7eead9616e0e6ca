#!/usr/bin/env python
"""Benchmark the API teacher path: concurrency, batch mode, and the cost of a cached request.

    .venv/bin/python scripts/bench_teacher.py              # 64 requests, 200 ms latency
    .venv/bin/python scripts/bench_teacher.py --requests 32 --latency 0.1 --no-write

Starts `tripost serve-teacher --backend scripted --latency L --batch-latency B`
as a separate process (so server and client do not share a GIL), then sends
the same N feedback requests through the real `openai` SDK and the prompted
teacher (`openai:scripted`, cache off) at concurrency 1 and at concurrency
16, in one run, and reports the speedup. The same round then goes out in
batch mode (`teacher.batch`: one OpenAI Batch through the SDK's files and
batches endpoints), priced with the list prices of `--price-as` (the server
counts tokens, 4 characters a token): the row shows the HTTP requests it
took and its cost at list and at batch price. Then it fills an on-disk cache
and times the same N requests answered from it (the server's /stats proves
that no HTTP request was made): that per-request time is the overhead the
teacher adds around a cached answer (prompt rendering, hashing, sqlite
lookup, parsing and validation). The scripted teacher called directly is
listed for reference.

Writes docs/benchmarks/teacher.json and docs/benchmarks/teacher.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tripost.format import parse_rationale  # noqa: E402
from tripost.student.hardware import machine_card  # noqa: E402
from tripost.tasks import get_task, sample_problems  # noqa: E402
from tripost.teachers import make_teacher  # noqa: E402
from tripost.teachers.scripted import ScriptedTeacher  # noqa: E402
from tripost.teachers.usage import database_price  # noqa: E402

FAMILIES = ("arithmetic", "word_sorting", "date_understanding", "logical_deduction")
COMMAND = ".venv/bin/python scripts/bench_teacher.py"


def requests(n: int) -> list[tuple]:
    """n distinct (problem, wrong attempt) pairs over the scripted families."""
    per = -(-n // len(FAMILIES))
    out = []
    for fam in FAMILIES:
        task = get_task(fam)
        for i, p in enumerate(sample_problems(task, split="train", n=per, seed=99)):
            rng = random.Random(f"bench|{fam}|{i}")
            k = rng.randint(1, parse_rationale(p.rationale).n_steps + 1)
            out.append((p, task.corrupt(p, k, rng)))
    return out[:n]


def start_server(latency: float, batch_latency: float) -> tuple[subprocess.Popen, str]:
    # The server's token is the key the clients below send.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRIPOST_SERVE_TOKEN": "bench-dummy-key"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tripost.serve", "--backend", "scripted", "--port", "0", "--latency", str(latency),
         "--batch-latency", str(batch_latency)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("serving"):
        proc.kill()
        raise SystemExit(f"serve-teacher did not start: {line!r}")
    return proc, line.split()[3]


def server_stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/stats") as r:
        return json.loads(r.read())


def server_requests(url: str) -> int:
    return int(server_stats(url)["requests"])


def run_batch(url: str, items: list[tuple], concurrency: int, cache: Path | bool, prices: dict | None = None,
              batch_log: Path | None = None) -> tuple[float, int, list[str], dict]:
    """(wall s, HTTP requests the server saw, feedback texts, the ledger entry).
    With `batch_log`, the round goes out as one provider batch (teacher.batch)."""
    batch = {"batch": True, "batch_wait": 0.2, "batch_poll": 0.25, "batch_log": batch_log} if batch_log else {}
    teacher = make_teacher(
        "openai:scripted", cache=cache, concurrency=concurrency, base_url=url + "/v1", api_key="bench-dummy-key",
        prices=prices, **batch,
    )
    try:
        if cache is False and not batch:
            # Warm the client (imports, connection) so the timing is the requests'.
            teacher.feedback(*items[-1])
        before = server_requests(url)
        booked = teacher.ledger.to_dict().get("openai:scripted", {})  # the warm-up's
        t0 = time.perf_counter()
        replies = teacher.feedback_many(items)
        wall = time.perf_counter() - t0
        made = server_requests(url) - before
        entry = {k: v - booked.get(k, 0) for k, v in teacher.ledger.to_dict().get("openai:scripted", {}).items()
                 if k in ("cost_usd", "list_cost_usd", "batched")}
    finally:
        teacher.close()
    bad = [r.rejected for r in replies if r.rejected]
    if bad:
        raise SystemExit(f"unexpected rejections: {bad[:3]}")
    return wall, made, [r.text for r in replies], entry


def cached_per_request(url: str, items: list[tuple], cache: Path) -> tuple[float, int, list[float]]:
    """Time each cached request on its own (sequential sync calls)."""
    teacher = make_teacher("openai:scripted", cache=cache, base_url=url + "/v1", api_key="bench-dummy-key")
    try:
        teacher.feedback(*items[0])  # warm-up
        before = server_requests(url)
        times = []
        for p, a in items:
            t0 = time.perf_counter()
            reply = teacher.feedback(p, a)
            times.append(time.perf_counter() - t0)
            assert reply.calls[0].cached
        made = server_requests(url) - before
    finally:
        teacher.close()
    return sum(times), made, times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.2, help="injected server latency in seconds (default 0.2)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--batch-latency", type=float, default=2.0,
                    help="seconds serve-teacher holds a batch before answering it (default 2; providers take minutes to hours)")
    ap.add_argument("--price-as", default="gpt-4o-mini",
                    help="bill the scripted model at this OpenAI model's list prices, from the price database (default gpt-4o-mini)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not write docs/benchmarks/")
    args = ap.parse_args(argv)

    items = requests(args.requests)
    price = database_price("openai", args.price_as)
    if price is None:
        ap.error(f"--price-as {args.price_as}: the price database has no OpenAI model of that name")
    prices = {"scripted": {k: v for k, v in asdict(price).items() if v is not None}}
    proc, url = start_server(args.latency, args.batch_latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            wall_1, made_1, texts_1, _ = run_batch(url, items, 1, cache=False)
            wall_n, made_n, texts_n, live = run_batch(url, items, args.concurrency, cache=False, prices=prices)
            assert texts_1 == texts_n
            batches_before = server_stats(url)["batches"]["created"]
            wall_b, made_b, texts_b, batched = run_batch(url, items, args.concurrency, cache=False, prices=prices,
                                                         batch_log=Path(tmp) / "teacher-batches.json")
            n_batches = server_stats(url)["batches"]["created"] - batches_before
            assert texts_b == texts_n, "a batch answered differently from the live API"
            cache = Path(tmp) / "cache.sqlite"
            run_batch(url, items, args.concurrency, cache=cache)  # fill the cache
            cached_total, made_cached, times = cached_per_request(url, items, cache)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    scripted = ScriptedTeacher()
    t0 = time.perf_counter()
    for p, a in items:
        scripted.feedback(p, a)
    direct = (time.perf_counter() - t0) / len(items)

    n = len(items)
    result = {
        # The figures issue 19 asks of the batch row: the same round live and as one batch.
        "summary": {
            "requests": len(items),
            "live_wall_s": round(wall_n, 3),
            "live_http_requests": made_n,
            "batch_wall_s": round(wall_b, 3),
            "batch_http_requests": made_b,
            "cost_list_usd": round(batched.get("list_cost_usd", 0.0), 6),
            "cost_batch_usd": round(batched.get("cost_usd", 0.0), 6),
            "batch_price_share": round(batched.get("cost_usd", 0.0) / batched["list_cost_usd"], 4) if batched.get("list_cost_usd") else None,
        },
        "command": COMMAND + ("" if (args.requests, args.latency, args.concurrency, args.batch_latency, args.price_as) == (64, 0.2, 16, 2.0, "gpt-4o-mini")
                              else f" --requests {args.requests} --latency {args.latency} --concurrency {args.concurrency}"
                                   f" --batch-latency {args.batch_latency} --price-as {args.price_as}"),
        "requests": n,
        "latency_s": args.latency,
        "concurrency_1": {"wall_s": round(wall_1, 3), "http_requests": made_1, "req_per_s": round(n / wall_1, 2)},
        f"concurrency_{args.concurrency}": {"wall_s": round(wall_n, 3), "http_requests": made_n, "req_per_s": round(n / wall_n, 2)},
        "batch": {"wall_s": round(wall_b, 3), "http_requests": made_b, "batches": n_batches, "batch_latency_s": args.batch_latency,
                  "requests_batched": batched.get("batched", 0)},
        "price_as": args.price_as,
        "cost_live_usd": round(live.get("cost_usd", 0.0), 6),
        "cost_batch_list_usd": round(batched.get("list_cost_usd", 0.0), 6),
        "cost_batch_usd": round(batched.get("cost_usd", 0.0), 6),
        "speedup": round(wall_1 / wall_n, 2),
        "ideal_speedup": float(min(args.concurrency, n)),
        "cached": {
            "http_requests": made_cached,
            "mean_ms_per_request": round(1000 * cached_total / n, 3),
            "median_ms_per_request": round(1000 * statistics.median(times), 3),
        },
        "scripted_direct_ms_per_request": round(1000 * direct, 3),
        "machine": machine_card(),  # tripost machine: CPU, flags, matmul GFLOP/s
    }
    list_b, cost_b = batched.get("list_cost_usd", 0.0), batched.get("cost_usd", 0.0)
    table = "\n".join([
        f"| setting | wall (s) | requests/s | HTTP requests | cost at list price | cost billed ({args.price_as} prices) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| concurrency 1, {args.latency * 1000:.0f} ms latency | {wall_1:.2f} | {n / wall_1:.1f} | {made_1} | | |",
        f"| concurrency {args.concurrency}, {args.latency * 1000:.0f} ms latency | {wall_n:.2f} | {n / wall_n:.1f} | {made_n} "
        f"| ${live.get('cost_usd', 0.0):.6f} | ${live.get('cost_usd', 0.0):.6f} |",
        f"| batch mode: {n_batches} OpenAI batch, held {args.batch_latency:g} s by the server | {wall_b:.2f} | {n / wall_b:.1f} | {made_b} "
        f"| ${list_b:.6f} | ${cost_b:.6f} |",
        f"| cached (sequential) | {cached_total:.3f} | {n / cached_total:.0f} | {made_cached} | $0 | $0 |",
        "",
        f"Batch mode: the same {n} answers for **{made_b} HTTP requests** (upload, create, status polls, result download) "
        f"instead of {made_n}, billed **${cost_b:.6f} instead of ${list_b:.6f}** ({cost_b / list_b:.0%} of the list price). "
        "Its wall time here is the server's hold plus the polling; a provider takes minutes to hours.",
        "",
        f"Speedup at concurrency {args.concurrency}: **{wall_1 / wall_n:.1f}x** (ideal {min(args.concurrency, n)}x). "
        f"Overhead per cached request: **{1000 * cached_total / n:.2f} ms** mean, {1000 * statistics.median(times):.2f} ms median "
        f"(the scripted teacher called directly: {1000 * direct:.2f} ms).",
    ])
    print(table)
    if not args.no_write:
        out = ROOT / "docs" / "benchmarks"
        out.mkdir(parents=True, exist_ok=True)
        (out / "teacher.json").write_text(json.dumps(result, indent=2) + "\n")
        md = f"""# Teacher benchmark: concurrency, batch mode and cached requests

Command (from the repository root):

    {result['command']}

{n} feedback requests (distinct problems from four families, each with one wrong
step) go through the real `openai` SDK and the prompted teacher (`openai:scripted`)
to `tripost serve-teacher --backend scripted --latency {args.latency} --batch-latency {args.batch_latency:g}`
running as a separate process on loopback. The same requests run at concurrency 1
and at concurrency {args.concurrency} in one run; then the same round goes out in
batch mode (`teacher.batch`: one OpenAI Batch, uploaded, created, polled and read
back through the SDK), and the answers are checked to be the live ones. Costs use
{args.price_as}'s list prices (the built-in table) for the tokens the server
counted; a batch is billed at half. Then a filled on-disk cache answers all the
requests (the server's `/stats` shows zero HTTP requests) and each is timed on its own.

{table}

Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}. The speedup is
bounded by the injected latency (the server answers in parallel); the cached
figure is the prompted teacher's own work per request: rendering the prompt,
hashing it, one sqlite lookup, parsing and validating the answer. Raw numbers:
`teacher.json`.
"""
        (out / "teacher.md").write_text(md)
        print(f"wrote {out / 'teacher.md'} and {out / 'teacher.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
