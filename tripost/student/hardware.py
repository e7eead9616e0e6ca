"""What the machine computes fast, found by looking and then measuring.

A 135M student is bound by matrix multiplication. Where the CPU has bf16
matrix instructions (Intel AMX `amx_bf16`, AVX-512 `avx512_bf16`), a bf16
matmul runs several times faster than fp32 (measured on such a machine: a
2048x2048 matmul at ~2.4 TFLOP/s in bf16 vs ~0.42 in fp32); where it has not
(an AVX2-only EPYC, this project's other build machine), torch emulates bf16
and the same matmul runs ~250x *slower* than fp32 (0.3 vs 86 GFLOP/s).
Choosing by habit is wrong on one of the two, so:

1. the CPU flags say whether bf16 can be fast at all (`/proc/cpuinfo`), and
2. where they say yes, a short timed matmul (well under a second) confirms
   that torch actually uses them; bf16 is chosen only when it is at least
   `BF16_MIN_SPEEDUP` times faster than fp32.

CUDA devices report bf16 support themselves. The result is computed once per
process and says why it was chosen (`ComputeProfile.reason`), so run outputs
can record it.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass
from typing import Any

# bf16 must beat fp32 by this much to be chosen on a CPU: rounding to 8
# mantissa bits is not free in accuracy, so a marginal speed-up is not worth it.
BF16_MIN_SPEEDUP = 1.5
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class ComputeProfile:
    """The fastest correct number format for a device's matrix work."""

    device: str  # "cpu" or "cuda"
    bf16: bool  # bf16 matmuls are fast here (autocast / bf16 weights pay)
    reason: str  # one line: what was looked at or measured
    fp32_gflops: float | None = None  # measured matmul rate, where measured
    bf16_gflops: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_flags() -> set[str]:
    """The CPU feature flags of the first processor (empty where unknown)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _matmul_gflops(dtype: Any, n: int = 512, repeats: int = 3) -> float:
    import torch

    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    a @ b  # first call: kernel selection, page faults
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


@functools.lru_cache(maxsize=None)
def cpu_profile() -> ComputeProfile:
    """bf16 or fp32 for this CPU: flags first, then a timed 512x512 matmul."""
    flags = cpu_flags() & set(CPU_BF16_FLAGS)
    if not flags:
        return ComputeProfile("cpu", False, "no bf16 matrix instructions (cpu flags lack amx_bf16 and avx512_bf16): fp32")
    import torch

    with torch.inference_mode():
        fp32 = _matmul_gflops(torch.float32)
        # Bounded: an emulated bf16 matmul of this size takes ~0.4 s at worst.
        bf16 = _matmul_gflops(torch.bfloat16, repeats=2)
    fast = bf16 >= BF16_MIN_SPEEDUP * fp32
    verdict = "bf16" if fast else "fp32"
    reason = f"cpu flags {', '.join(sorted(flags))}; 512x512 matmul {bf16:.0f} GFLOP/s in bf16 vs {fp32:.0f} in fp32: {verdict}"
    return ComputeProfile("cpu", fast, reason, round(fp32, 1), round(bf16, 1))


def compute_profile(device: Any = None) -> ComputeProfile:
    """The profile of `device` (a torch.device or its name; None: CUDA when available)."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ComputeProfile("cuda", ok, f"cuda device {'supports' if ok else 'does not support'} bf16")
    if dev.type == "cpu":
        return cpu_profile()
    return ComputeProfile(dev.type, False, f"{dev.type}: fp32 (not profiled)")
