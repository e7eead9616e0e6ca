"""Statistics shared by evaluation, the gap, sharpening and the benchmarks:
the Wilson score interval of a single proportion (successes out of n 0/1
outcomes: an accuracy, a rate), and the percentile bootstrap for everything
else (means of non-binary values, and differences: paired when two methods
are scored on the same problems).

A base module (no tripost imports beyond errors), so the stages that report
intervals need not import each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np

from tripost.errors import TripostError


def share(num: float, den: float) -> float | None:
    """num / den, a proportion or a mean, or None when there is nothing to
    divide by (den == 0): an empty cell reads "—", not 0%."""
    return None if den == 0 else num / den


def proportion_interval(successes: int | float, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of the proportion `successes` / `n` of 0/1
    outcomes; None when n == 0 (nothing observed, as `bootstrap_interval`).

    Why not the percentile bootstrap: resampling 0/n (or n/n) outcomes only
    ever gives 0/n, so the interval collapses to [0, 0] (issue 27: at n=16,
    p=0.05 it covered the truth in 59% of simulations, nominal 95%). Why
    Wilson rather than Clopper-Pearson: both are never empty at 0/n, but
    Clopper-Pearson guarantees at least the nominal coverage for every p and
    so is conservative (often ~98-99% at n of a few dozen, i.e. wider than it
    needs to be), whereas Wilson's coverage stays close to nominal on average
    at small n (Brown, Cai & DasGupta 2001, Statist. Sci. 16:101, recommend
    it for n < 40); it is also closed-form (no beta quantiles, so no scipy).
    The interval always contains successes / n and lies in [0, 1]."""
    if not 0 < confidence < 1:
        raise TripostError(f"confidence must be in (0, 1), got {confidence}")
    if n < 0 or int(n) != n:
        raise TripostError(f"proportion interval: n must be a count >= 0, got {n}")
    if int(successes) != successes or not 0 <= successes <= n:
        raise TripostError(f"proportion interval: successes must be a count in [0, n={n}], got {successes}")
    n, x = int(n), int(successes)
    if n == 0:
        return None
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = x / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Exact at the ends (the formula gives 0 and 1 there up to rounding), and
    # min/max so that rounding can never leave the estimate outside.
    lo = 0.0 if x == 0 else max(0.0, min(p, center - half))
    hi = 1.0 if x == n else min(1.0, max(p, center + half))
    return (lo, hi)


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of `statistic` (default: the mean) over
    `values`; `statistic` maps resamples of shape (n_boot, n) to (n_boot,),
    NaN where undefined. None when there is nothing to resample. Not for a
    single proportion of 0/1 outcomes (it collapses to [0, 0] at 0/n): use
    `proportion_interval` for those."""
    x = np.asarray(values)
    if x.shape[0] == 0:
        return None
    stat = statistic or (lambda a: a.mean(axis=-1))
    idx = resample_index(x.shape[0], n_boot, seed)
    return percentile_interval(stat(x[idx]), confidence)


def paired_bootstrap_interval(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of mean(a - b), where `a[i]` and `b[i]`
    are two methods' scores (0/1 or floats) on the same problem i: the
    problems are resampled together, so the interval is of the difference on
    the same problems, not of two independent means (usually wider: what the
    problems' difficulty adds to both cancels in a - b). None when there are no
    problems; lengths that differ are an error (the pairing would be wrong)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise TripostError(f"paired bootstrap: a and b must be per-problem lists of one length, got {x.shape} and {y.shape}")
    return bootstrap_interval(x - y, n_boot=n_boot, seed=seed, confidence=confidence)


def resample_index(n: int, n_boot: int, seed: int) -> np.ndarray:
    """`n_boot` resamples (with replacement) of the indices 0..n-1, seeded."""
    if n_boot < 1:
        raise TripostError(f"n_boot must be at least 1, got {n_boot}")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def percentile_interval(stats: np.ndarray, confidence: float) -> tuple[float, float] | None:
    """The central `confidence` interval of bootstrap statistics (NaNs left out)."""
    if not 0 < confidence < 1:
        raise TripostError(f"confidence must be in (0, 1), got {confidence}")
    stats = np.asarray(stats, dtype=float)
    stats = stats[~np.isnan(stats)]
    if stats.size == 0:
        return None
    alpha = (1 - confidence) / 2
    lo, hi = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return (float(lo), float(hi))


__all__ = ["bootstrap_interval", "paired_bootstrap_interval", "percentile_interval", "proportion_interval", "resample_index"]
