"""tripost.stats: the paired bootstrap of two methods on the same problems."""

from __future__ import annotations

import numpy as np
import pytest

from tripost.errors import TripostError
from tripost.stats import bootstrap_interval, paired_bootstrap_interval


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
