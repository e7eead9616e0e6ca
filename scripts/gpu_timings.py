"""The timing half of scripts/gpu_check.sh: on the device it runs on, a
SmolLM2-135M-shaped model (its config, random weights: the real weights do
not fit the 64 MiB a GPU call carries, and speed does not depend on them)
samples in bf16 and fp32 on the continuous engine and trains a few steps
with the setup `auto` picks (QLoRA nf4 on a GPU) and fully fine-tuned in
bf16 autocast. Prints a table and writes JSON and Markdown with the machine
card and the pytest summary of the check.

    python scripts/gpu_timings.py --out OUT/gpu-check.json --md OUT/gpu-check.md

TRIPOST_TINY_MODEL (set by gpu_check.sh) names a prepared tiny model whose
tokenizer is used where the embedded student is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# SmolLM2-135M's shape (its config.json).
SMOLLM2_135M = dict(layers=30, hidden=576, heads=9, kv_heads=3, intermediate=1536)


def use_prepared_tokenizer() -> None:
    """Where the embedded student is not installed, the prepared tiny
    model's folder holds the same tokenizer."""
    tiny = os.environ.get("TRIPOST_TINY_MODEL")
    if not tiny:
        return
    from tripost.student import embedded

    try:
        embedded.find_embedded_gguf()
    except Exception:  # noqa: BLE001 - any reason it is missing: use the prepared copy
        embedded.embedded_tokenizer_dir = lambda: Path(tiny)


def time_sampling(model_dir: Path, precision: str, batch: int, new_tokens: int) -> dict[str, Any]:
    from tripost.student import SamplingParams, build_prompt, load_student

    s = load_student(f"hf:{model_dir}", precision=precision)
    prompts = [build_prompt(s.tokenizer, f"What is {i} + {2 * i + 1}? Explain every step.") for i in range(batch)]
    params = SamplingParams(n=1, temperature=1.0, max_new_tokens=new_tokens, ignore_eos=True, seed=0)
    s.sample(prompts[:2], SamplingParams(n=1, temperature=1.0, max_new_tokens=4, seed=0))  # warm-up: kernels, allocator
    _sync()
    t = time.perf_counter()
    out = s.sample(prompts, params, batch_size=batch)
    _sync()
    dt = time.perf_counter() - t
    tokens = sum(g.n_tokens for r in out for g in r)
    return {"cell": f"sample {precision} batch {batch}", "tokens": tokens, "seconds": round(dt, 3), "tokens_per_s": round(tokens / dt, 1),
            "device": str(s.model.device)}


def time_training(model_dir: Path, out: Path, **kw: Any) -> dict[str, Any]:
    import datasets

    from tripost.train import TrainConfig, train_sft

    rows = [(f"What is {i} + {3 * i}?", "".join(f"({k + 1}) {i} + {3 * i} = {4 * i}.\n" for k in range(8)) + f"(Final response) So the answer is {4 * i}.")
            for i in range(64)]
    ds = datasets.Dataset.from_dict({"prompt": [r[0] for r in rows], "completion": [r[1] for r in rows], "weight": [1.0] * len(rows)})
    cfg = TrainConfig(student=f"hf:{model_dir}", batch_size=8, max_steps=8, warmup=0.0, logging_steps=1, save_steps=1000, progress=False, **kw)
    res = train_sft(cfg, ds, out)
    return {"cell": "train " + ", ".join(f"{k}={v}" for k, v in kw.items()) if kw else "train (auto)", "tokens": res.tokens,
            "seconds": res.seconds, "tokens_per_s": res.tokens_per_second, "setup": res.setup.get("reasons") if isinstance(res.setup, dict) else None,
            "mode": res.setup.get("mode"), "precision": res.setup.get("precision"), "autocast": res.setup.get("autocast")}


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSON result")
    p.add_argument("--md", help="Markdown page")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--pytest-rc", type=int, default=None)
    p.add_argument("--pytest-log", default=None)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    use_prepared_tokenizer()

    from tripost.student.hardware import describe_card, machine_card
    from tripost.student.tiny import build_tiny_model

    card = machine_card()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "smollm2-shape", **SMOLLM2_135M)
        for precision in ("bf16", "fp32"):
            rows.append(time_sampling(model, precision, args.batch, args.new_tokens))
            print(rows[-1], file=sys.stderr, flush=True)
        for kw in ({}, {"mode": "full", "precision": "fp32", "mixed_precision": "bf16"}):
            try:
                rows.append(time_training(model, Path(tmp) / f"train{len(rows)}", **kw))
            except Exception as e:  # noqa: BLE001 - a failed cell is a row that says why, not a lost table
                rows.append({"cell": f"train {kw or '(auto)'}", "error": f"{type(e).__name__}: {str(e)[:300]}"})
            print(rows[-1], file=sys.stderr, flush=True)
    summary = ""
    if args.pytest_log and Path(args.pytest_log).exists():
        lines = [x for x in Path(args.pytest_log).read_text().splitlines() if x.strip()]
        summary = lines[-1] if lines else ""
    result = {
        "command": "bash scripts/gpu_check.sh OUT (timings: " + " ".join(shlex.quote(a) for a in ["scripts/gpu_timings.py", *(argv or sys.argv[1:])]) + ")",
        "machine": card, "pytest": {"rc": args.pytest_rc, "summary": summary}, "rows": rows,
        "summary": {r["cell"]: r.get("tokens_per_s") for r in rows},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    table = ["| cell | tokens | seconds | tokens/s |", "|---|---:|---:|---:|"]
    for r in rows:
        table.append(f"| {r['cell']} | {r.get('tokens', '—')} | {r.get('seconds', '—')} | {r.get('tokens_per_s', r.get('error', '—'))} |")
    print("\n".join(table))
    if args.md:
        Path(args.md).write_text("\n".join([
            "# GPU check", "", f"Command: `{result['command']}`", "",
            *[f"{line}  " for line in describe_card(card).splitlines()], "",
            f"Tests on the device (`tests/test_hardware.py test_engine.py test_student.py test_train.py test_dpo.py`, tiny model): "
            f"{summary or 'not run'} (rc {args.pytest_rc}).", "",
            f"Timings: a SmolLM2-135M-shaped model with random weights, batch {args.batch} x {args.new_tokens} new tokens for sampling; "
            "8 training steps of 8 examples.", "", *table, "",
        ]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
