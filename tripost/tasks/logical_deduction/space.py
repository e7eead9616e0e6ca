"""All orders of n objects as a bitset over the n! permutations (5040 for
n = 7): "the clues allow exactly one order" and "these premises entail that
X is third" are a few big-int ANDs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

@dataclass(frozen=True)
class Space:
    """All orders of n objects; `at[o][p]` is the set of orders that put
    object o at position p (1-based), `before[a][b]` those with a before b."""

    n: int
    perms: tuple[tuple[int, ...], ...]  # perms[i][o] = position of object o
    full: int
    at: tuple[tuple[int, ...], ...]
    before: tuple[tuple[int, ...], ...]

    def decode(self, orders: int) -> tuple[int, ...]:
        """One order in a non-empty set (the lowest)."""
        return self.perms[(orders & -orders).bit_length() - 1]


@lru_cache(maxsize=None)
def space_of(n: int) -> Space:
    perms = tuple(itertools.permutations(range(1, n + 1)))
    at = [[0] * (n + 1) for _ in range(n)]
    for i, perm in enumerate(perms):
        bit = 1 << i
        for o, p in enumerate(perm):
            at[o][p] |= bit
    before = [[0] * n for _ in range(n)]
    for a in range(n):
        for b in range(n):
            if a != b:
                m = 0
                for p in range(1, n + 1):
                    for q in range(p + 1, n + 1):
                        m |= at[a][p] & at[b][q]
                before[a][b] = m
    return Space(n, perms, (1 << len(perms)) - 1, tuple(map(tuple, at)), tuple(map(tuple, before)))
