"""Statistics shared by evaluation, the gap, sharpening and the benchmarks:
percentile bootstrap, also paired (two methods on the same problems).

A base module (no tripost imports beyond errors), so the stages that report
intervals need not import each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tripost.errors import TripostError


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
    NaN where undefined. None when there is nothing to resample."""
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


__all__ = ["bootstrap_interval", "paired_bootstrap_interval", "percentile_interval", "resample_index"]
