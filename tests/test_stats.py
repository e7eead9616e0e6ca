"""tripost.stats: the Wilson interval of a single proportion, and the paired
bootstrap of two methods on the same problems."""

from __future__ import annotations

import numpy as np
import pytest

from tripost.errors import TripostError
from tripost.stats import bootstrap_interval, paired_bootstrap_interval, proportion_interval


def test_identical_methods_differ_by_exactly_zero():
    a = [1, 0, 1, 1, 0, 0, 1, 0]
    assert paired_bootstrap_interval(a, list(a), n_boot=200, seed=3) == (0.0, 0.0)


def test_a_method_that_dominates_has_an_interval_above_zero():
    rng = np.random.default_rng(0)
    b = rng.integers(0, 2, size=200)
    a = b.copy()
    a[rng.choice(np.flatnonzero(b == 0), size=30, replace=False)] = 1  # right wherever b is, and on 30 more
    lo, hi = paired_bootstrap_interval(a, b, n_boot=500, seed=1)
    assert 0 < lo <= 30 / 200 <= hi
    # The other way round: entirely below zero.
    lo2, hi2 = paired_bootstrap_interval(b, a, n_boot=500, seed=1)
    assert hi2 < 0


def test_pairing_makes_the_interval_narrower_than_independent_means():
    """Shared difficulty cancels in a - b: the paired interval is narrower
    than the one of the difference of two independently resampled means."""
    rng = np.random.default_rng(2)
    b = rng.integers(0, 2, size=300)
    a = b.copy()
    a[rng.choice(np.flatnonzero(b == 0), size=15, replace=False)] = 1
    lo, hi = paired_bootstrap_interval(a, b, n_boot=1000, seed=0)
    la, ha = bootstrap_interval(a, n_boot=1000, seed=0)
    lb, hb = bootstrap_interval(b, n_boot=1000, seed=1)
    assert hi - lo < ((ha - la) ** 2 + (hb - lb) ** 2) ** 0.5


def test_seeded_floats_and_empty():
    a, b = [0.2, 0.9, 0.5, 0.7], [0.1, 0.4, 0.6, 0.2]
    assert paired_bootstrap_interval(a, b, n_boot=100, seed=4) == paired_bootstrap_interval(a, b, n_boot=100, seed=4)
    lo, hi = paired_bootstrap_interval(a, b, n_boot=300, seed=4)
    assert lo <= np.mean(np.subtract(a, b)) <= hi
    assert paired_bootstrap_interval([], []) is None


def test_lengths_that_differ_are_one_error():
    with pytest.raises(TripostError, match=r"^paired bootstrap: a and b must be per-problem lists of one length"):
        paired_bootstrap_interval([1, 0, 1], [1, 0])


# ------------------------------------------------- single proportions (Wilson) ---


def coverage(n: int, p: float, draws: int = 2000, seed: int = 0) -> float:
    """Share of `draws` simulated x ~ Binomial(n, p) whose interval holds p."""
    xs = np.random.default_rng(seed).binomial(n, p, size=draws)
    holds = {}
    for x in set(xs.tolist()):
        lo, hi = proportion_interval(x, n)
        holds[x] = lo <= p <= hi
    return float(np.mean([holds[x] for x in xs.tolist()]))


@pytest.mark.parametrize("n, p", [(16, 0.05), (200, 0.3)])
def test_wilson_covers_the_truth_near_the_nominal_rate(n, p):
    """Issue 27: at n=16, p=0.05 the percentile bootstrap covered p in 59% of
    simulations (it is [0, 0] whenever no success is drawn, 44% of draws)."""
    assert coverage(n, p) >= 0.90


def test_the_bootstrap_collapses_at_zero_successes_where_wilson_does_not():
    assert bootstrap_interval([0] * 16, n_boot=200, seed=0) == (0.0, 0.0)
    lo, hi = proportion_interval(0, 16)
    assert lo == 0.0 and hi > 0
    # Closed form at 0/n: z^2 / (n + z^2).
    assert hi == pytest.approx(1.959964 ** 2 / (16 + 1.959964 ** 2), rel=1e-6)
    lo, hi = proportion_interval(16, 16)
    assert lo < 1 and hi == 1.0


@pytest.mark.parametrize("n", [1, 2, 7, 16, 50, 200])
def test_wilson_holds_the_estimate_and_stays_in_0_1(n):
    for x in range(n + 1):
        lo, hi = proportion_interval(x, n)
        assert 0 <= lo <= x / n <= hi <= 1 and lo < hi


def test_wilson_known_values_and_confidence():
    # 1/16 and 60/200 at 95%; each bound is a root of Wilson's score equation
    # (x/n - p)^2 = z^2 p (1 - p) / n, the p where the score test just rejects.
    z = 1.959963984540054
    for x, n, expected in ((1, 16, (0.011119, 0.283287)), (60, 200, (0.240747, 0.366791))):
        bounds = proportion_interval(x, n)
        assert bounds == pytest.approx(expected, abs=1e-6)
        for p in bounds:
            assert (x / n - p) ** 2 == pytest.approx(z * z * p * (1 - p) / n, rel=1e-9)
    lo50, hi50 = proportion_interval(5, 20, confidence=0.5)
    lo95, hi95 = proportion_interval(5, 20)
    lo99, hi99 = proportion_interval(5, 20, confidence=0.99)
    assert lo99 < lo95 < lo50 < 0.25 < hi50 < hi95 < hi99
    # numpy counts and 0/1 floats that sum to a count are accepted.
    assert proportion_interval(np.int64(3), np.int64(10)) == proportion_interval(3.0, 10) == proportion_interval(3, 10)


def test_wilson_no_data_is_none_and_bad_input_is_an_error():
    assert proportion_interval(0, 0) is None  # as bootstrap_interval([]): nothing observed
    with pytest.raises(TripostError, match="successes must be a count in"):
        proportion_interval(3, 2)
    with pytest.raises(TripostError, match="successes must be a count in"):
        proportion_interval(-1, 2)
    with pytest.raises(TripostError, match="successes must be a count in"):
        proportion_interval(0.5, 2)
    with pytest.raises(TripostError, match="n must be a count"):
        proportion_interval(0, -1)
    with pytest.raises(TripostError, match="confidence must be in"):
        proportion_interval(1, 2, confidence=1.0)
