"""Plausible one-claim mistakes in date rationales (for `corrupt`)."""

from __future__ import annotations

import random
import re

from tripost.tasks.base import Problem
from tripost.tasks.date_understanding.answers import resolve
from tripost.tasks.date_understanding.claims import find_dates, find_offsets
from tripost.tasks.date_understanding.dates import fmt, near, parse_date


def wrong_answers(problem: Problem, rng: random.Random) -> list[str]:
    gold = resolve(problem.answer, problem.options) or problem.answer
    out = [o for o in problem.options if o != gold]
    rng.shuffle(out)
    d = parse_date(gold)
    if d is not None:
        out += [fmt(x) for x in near(d)]
    letters = [f"({'ABCDEF'[i]})" for i, o in enumerate(problem.options) if o != gold]
    if letters and rng.random() < 0.3:
        out.insert(0, rng.choice(letters))
    return out


def wrong_steps(step: str, rng: random.Random) -> list[str]:
    """One-claim mistakes in a gold step: a wrong result, a wrong starting
    date, a wrong number of days, a flipped direction; in random order."""
    claims = find_dates(step)
    offsets = find_offsets(step)
    out: list[str] = []
    if claims:
        last = claims[-1]
        if last.value is not None:
            for w in rng.sample(near(last.value), 3):
                out.append(step[: last.start] + fmt(w) + step[last.end :])
    if len(claims) >= 2 and claims[0].value is not None:
        first = claims[0]
        w = rng.choice(near(first.value))
        out.append(step[: first.start] + fmt(w) + step[first.end :])
    for o in offsets:
        m = re.search(r"\d+", step[o.start : o.end])
        if m:
            a, b = o.start + m.start(), o.start + m.end()
            n = int(m.group(0))
            out.append(step[:a] + str(n + rng.choice([1, 2, -1] if n > 1 else [1, 2])) + step[b:])
        flip = {"after": "before", "before": "after", "ago": "later"}
        for word, other in flip.items():
            m = re.search(rf"\b{word}\b", step[o.start : o.end])
            if m:
                a, b = o.start + m.start(), o.start + m.end()
                out.append(step[:a] + other + step[b:])
                break
    rng.shuffle(out)
    return out
