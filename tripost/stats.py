"""Statistics shared by evaluation, the gap and sharpening: percentile bootstrap.

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


__all__ = ["bootstrap_interval", "percentile_interval", "resample_index"]
