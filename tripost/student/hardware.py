"""What the machine computes fast, decided from what the hardware is.

A 135M student is bound by matrix multiplication. Where the CPU has bf16
matrix instructions (Intel AMX `amx_bf16`, AVX-512 `avx512_bf16`), a bf16
matmul runs several times faster than fp32 (measured: 2048x2048 at ~2.4 vs
~0.42 TFLOP/s on an AMX Xeon, 402 vs 114 GFLOP/s on an AVX512-BF16 Zen 4);
where it has not (an AVX2-only EPYC), torch emulates bf16 and the same matmul
runs ~250x *slower* than fp32. Choosing by habit is wrong on one of the two.

The choice is made from what the hardware *is*, never from a timing: an
earlier version confirmed the flags with a timed matmul, and two identical
runs started together on one busy machine chose differently (one measured
bf16 at 214 vs 75 GFLOP/s, the other 90 vs 90), so one config gave two sets
of records and weights. Now:

1. torch's own view of the CPU (`torch.cpu._is_amx_tile_supported`,
   `_is_avx512_bf16_supported`: what its kernels will actually use), and
2. where torch cannot say (older builds), the CPU flags in `/proc/cpuinfo`.

CUDA devices report bf16 support themselves. The decision is one value,
`ComputeProfile`, computed once per process. Two things may replace it:

- `pinned(profile)`: a run folder records the profile it started with
  (`machine.json`), and its stages run pinned to it, so a resumed run and
  every later stage use the same number format even on another machine;
- `TRIPOST_SIMULATE_PROFILE=avx2|avx512_bf16|amx|cuda` (`SIMULATED`): the
  test suite's seam, so every `auto` decision can be tested for every kind of
  machine on any machine, in-process and in the CLI subprocesses it starts.

Timings belong to the machine card (`machine_card`): what this machine
measures, for run folders, benchmarks and CI logs; they decide nothing.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from tripost.errors import TripostError

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# The flags a machine card lists: what decides the number format, and what
# the kernels a CPU can run depend on.
CARD_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
SIMULATE_ENV = "TRIPOST_SIMULATE_PROFILE"


@dataclass(frozen=True)
class ComputeProfile:
    """The fastest correct number format for a device's matrix work."""

    device: str  # "cpu" or "cuda"
    bf16: bool  # bf16 matmuls are fast here (autocast / bf16 weights pay)
    reason: str  # one line: what was looked at
    flags: tuple[str, ...] = ()  # the bf16 matrix flags found (CPU)
    memory_bytes: int | None = None  # a simulated device's free memory (None: ask the device)
    simulated: str | None = None  # the SIMULATED name, when this is not the real machine

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flags"] = list(self.flags)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ComputeProfile":
        try:
            return cls(device=str(d["device"]), bf16=bool(d["bf16"]), reason=str(d["reason"]),
                       flags=tuple(d.get("flags") or ()), memory_bytes=d.get("memory_bytes"), simulated=d.get("simulated"))
        except (KeyError, TypeError) as e:
            raise TripostError(f"a recorded compute profile lacks {e}; got {str(d)[:200]}") from None


# The kinds of machine this project meets, as the decisions see them. The
# CPU ones are the three kinds seen on its 2-core builders (issue 26); the
# GPU one is any CUDA device with bf16 (Ampere or later) and 80 GB.
SIMULATED: dict[str, ComputeProfile] = {
    "avx2": ComputeProfile("cpu", False, "simulated AVX2-only CPU (no amx_bf16, no avx512_bf16): fp32", simulated="avx2"),
    "avx512_bf16": ComputeProfile("cpu", True, "simulated CPU with avx512_bf16: bf16", ("avx512_bf16",), simulated="avx512_bf16"),
    "amx": ComputeProfile("cpu", True, "simulated CPU with amx_bf16, avx512_bf16: bf16", ("amx_bf16", "avx512_bf16"), simulated="amx"),
    "cuda": ComputeProfile("cuda", True, "simulated CUDA device that supports bf16", memory_bytes=80 * 2**30, simulated="cuda"),
}

_pinned: ComputeProfile | None = None


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


def torch_bf16_flags() -> set[str] | None:
    """The bf16 matrix instructions torch's CPU kernels can use here, by
    torch's own check; None where this torch cannot say."""
    try:
        import torch

        amx = torch.cpu._is_amx_tile_supported()
        avx512 = torch.cpu._is_avx512_bf16_supported()
    except (AttributeError, RuntimeError):
        return None
    return ({"amx_bf16"} if amx else set()) | ({"avx512_bf16"} if avx512 else set())


def simulated_profile() -> ComputeProfile | None:
    """The profile named by TRIPOST_SIMULATE_PROFILE, if set."""
    name = os.environ.get(SIMULATE_ENV, "").strip()
    if not name:
        return None
    if name not in SIMULATED:
        raise TripostError(f"unknown {SIMULATE_ENV} {name[:40]!r}; choose from {', '.join(SIMULATED)}")
    return SIMULATED[name]


@functools.lru_cache(maxsize=None)
def _real_cpu_profile() -> ComputeProfile:
    seen = torch_bf16_flags()
    how = "torch's cpu check"
    if seen is None:
        seen, how = cpu_flags() & set(CPU_BF16_FLAGS), "cpu flags"
    found = tuple(sorted(seen))
    if not found:
        return ComputeProfile("cpu", False, f"no bf16 matrix instructions ({how}: no amx_bf16, no avx512_bf16): fp32")
    return ComputeProfile("cpu", True, f"bf16 matrix instructions ({how}: {', '.join(found)}): bf16", found)


def compute_profile(device: Any = None) -> ComputeProfile:
    """The profile of `device` (a torch.device or its name; None: CUDA when
    available). A pinned profile wins for its device type, then a simulated one."""
    import torch

    override = [p for p in (_pinned, simulated_profile()) if p is not None]
    if device is None:
        dev_type = "cuda" if torch.cuda.is_available() else (override[0].device if override else "cpu")
    else:
        dev_type = torch.device(device).type
    for p in override:
        if p.device == dev_type:
            return p
    if dev_type == "cuda":
        if not torch.cuda.is_available():
            raise TripostError("device cuda was asked for, but this torch has no CUDA device (install a CUDA build of torch, or use device cpu)")
        ok = torch.cuda.is_bf16_supported()
        return ComputeProfile("cuda", ok, f"cuda device {torch.cuda.get_device_name()} {'supports' if ok else 'does not support'} bf16")
    if dev_type == "cpu":
        return _real_cpu_profile()
    return ComputeProfile(dev_type, False, f"{dev_type}: fp32 (not profiled)")


@contextlib.contextmanager
def pinned(profile: ComputeProfile | None) -> Iterator[None]:
    """Every compute_profile() of its device type returns `profile` inside."""
    global _pinned
    before = _pinned
    _pinned = profile
    try:
        yield
    finally:
        _pinned = before


# ---------------------------------------------------------------- the card ---


def matmul_gflops(dtype: Any, n: int = 512, budget_s: float = 1.0, shape: tuple[int, int, int] | None = None) -> float:
    """The best of a few n x n matmuls in `dtype` (or (m, k) x (k, p) for
    `shape=(m, k, p)`, e.g. a decode step's 64 rows through a 576 x 1536
    layer), in GFLOP/s; stops repeating once `budget_s` is spent (an emulated
    bf16 matmul is slow)."""
    import torch

    m, k, p = shape or (n, n, n)
    with torch.inference_mode():
        a = torch.randn(m, k).to(dtype)
        b = torch.randn(k, p).to(dtype)
        a @ b  # first call: kernel selection, page faults
        best, spent = float("inf"), 0.0
        for _ in range(5):
            t = time.perf_counter()
            a @ b
            dt = time.perf_counter() - t
            best, spent = min(best, dt), spent + dt
            if spent > budget_s:
                break
    return 2 * m * k * p / best / 1e9


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# A card's matmul size: large enough to show a CPU's matrix-unit rate
# (0.15 s for both formats on an AVX512-BF16 Zen 4), small enough to run at
# the start of every run. Where bf16 is emulated (~250x slower than fp32)
# it is timed at EMULATED_BF16_N instead, so the card still costs well
# under a second there; the card records both sizes.
CARD_MATMUL_N = 1024
EMULATED_BF16_N = 256


def machine_card(measure: bool = True, matmul_n: int = CARD_MATMUL_N) -> dict[str, Any]:
    """One description of this machine: CPU model, the flags that matter,
    threads, torch version, device, the number-format decision, and (with
    `measure`) fp32 and bf16 matmul GFLOP/s. Measured on whatever else the
    machine is doing: `loadavg_1m` says how busy it was."""
    import torch

    flags = cpu_flags()
    profile = compute_profile()
    bf16_n = matmul_n if profile.bf16 else min(matmul_n, EMULATED_BF16_N)
    card: dict[str, Any] = {
        "cpu": cpu_model(),
        "flags": [f for f in CARD_FLAGS if f in flags],
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torch_cpu_capability": _torch_cpu_capability(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "compute_profile": profile.to_dict(),
        "fp32_gflops": None,
        "bf16_gflops": None,
        "matmul_n": matmul_n,
        "bf16_matmul_n": bf16_n,
        "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if measure:
        card["fp32_gflops"] = round(matmul_gflops(torch.float32, matmul_n), 1)
        card["bf16_gflops"] = round(matmul_gflops(torch.bfloat16, bf16_n), 1)
    return card


def _torch_cpu_capability() -> str | None:
    try:
        import torch

        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        return None


def describe_card(card: dict[str, Any]) -> str:
    """The card in two lines, for logs and reports."""
    g, n, nb = (card.get("fp32_gflops"), card.get("bf16_gflops")), card.get("matmul_n"), card.get("bf16_matmul_n")
    rate = "matmul not measured" if g[0] is None else (
        f"{n}x{n} matmul {g[0]:.0f} GFLOP/s fp32, {g[1]:.0f} bf16" + ("" if nb == n else f" (bf16 at {nb}x{nb})"))
    prof = card.get("compute_profile") or {}
    return (f"machine: {card.get('cpu')} ({card.get('cpus')} cpus, {card.get('torch_threads')} torch threads), flags "
            f"{', '.join(card.get('flags') or []) or 'none of ' + ', '.join(CARD_FLAGS)}; torch {card.get('torch')} on {card.get('device')}\n"
            f"number format: {prof.get('reason', '?')}; {rate}")


__all__ = [
    "CPU_BF16_FLAGS", "ComputeProfile", "SIMULATED", "SIMULATE_ENV", "compute_profile", "cpu_flags",
    "describe_card", "machine_card", "matmul_gflops", "pinned", "simulated_profile", "torch_bf16_flags",
]
