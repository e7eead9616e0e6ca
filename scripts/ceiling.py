"""The machine's own limit for the student, shared by the speed benchmarks.

A generated token costs ~2 x P FLOP and a trained token ~6 x P (forward,
and backward twice the forward), P the student's parameter count with a tied
embedding counted once (134.5 M for the embedded SmolLM2-135M). The ceiling
is the best matmul rate this machine measures, in the precision the work
runs in, on the shape of the student's widest layer at the work's row count
(hidden x intermediate: 576 x 1536), divided by that cost. Attention over the
cache, norms, sampling and the optimizer are all extra work on top, so no
real step reaches it; the benches report their share of it.
"""

from __future__ import annotations

from typing import Any


def student_ceiling(spec: str, dtype: Any, rows: int, *, trained: bool) -> dict[str, Any]:
    """`ceiling_tok_s` and how it was measured, for `rows` tokens per matmul
    (a decode step's batch, or a training micro-batch's tokens)."""
    import json

    from tripost.student.hardware import matmul_gflops
    from tripost.student.load import resolve_model_dir
    from tripost.student.spec import parse_spec
    from tripost.train import student_parameters

    params = student_parameters(spec)
    if params is None:
        raise SystemExit(f"cannot count the parameters of {spec} (no config.json with the usual keys)")
    cfg = json.loads((resolve_model_dir(parse_spec(spec)) / "config.json").read_text(encoding="utf-8"))
    shape = (rows, int(cfg["hidden_size"]), int(cfg["intermediate_size"]))
    gflops = max(matmul_gflops(dtype, shape=shape, budget_s=1.5) for _ in range(3))
    flop = (6 if trained else 2) * params
    return {
        "parameters": params,
        "flop_per_token": flop,
        "matmul_shape": list(shape),
        "matmul_dtype": str(dtype).replace("torch.", ""),
        "matmul_gflops": round(gflops, 1),
        "ceiling_tok_s": round(gflops * 1e9 / flop, 1),
    }
