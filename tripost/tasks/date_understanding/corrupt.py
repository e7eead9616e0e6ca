"""Plausible mistakes in date rationales: one-claim mistakes (for
`corrupt`), and whole wrong runs that carry a wrong date down the chain to a
wrong answer (for `wrong_attempt`, `wrong_runs`)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import date

from tripost.tasks.base import Problem
from tripost.tasks.date_understanding.answers import resolve
from tripost.tasks.date_understanding.check import Chain
from tripost.tasks.date_understanding.claims import NUM_DATE_RE, find_dates, find_offsets
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


def _with_last_date(step: str, d: date) -> str:
    last = find_dates(step)[-1]
    return step[: last.start] + fmt(d) + step[last.end :]


def _slips(chain: Chain, step: int, rng: random.Random) -> list[tuple[str, date]]:
    """(the gold step `step` with one slip, the date it then reaches): a wrong
    result; and for a move, a number of units off, the direction flipped or
    the date it starts from copied wrong, each worked out as written."""
    text, node = chain.steps[step - 1]
    claims = find_dates(text)
    if not claims or claims[-1].value != chain.nodes[node]:
        return []
    out = [(_with_last_date(text, d), d) for d in rng.sample(near(chain.nodes[node]), 2)]
    if node == 0:  # the anchor named in MM/DD/YYYY: only its result can be wrong
        return out
    src = chain.nodes[node - 1]
    mutated: list[str] = []
    for o in find_offsets(text):
        seg = text[o.start : o.end]
        m = re.search(r"\d+", seg)
        if m:
            n = int(m.group(0))
            hours = re.search(r"\bhours?\b", seg, re.IGNORECASE) is not None
            step_by = [24] if hours else ([1, 2, -1] if n > 1 else [1, 2])
            mutated.append(text[: o.start + m.start()] + str(n + rng.choice(step_by)) + text[o.start + m.end() :])
        for word, other in (("ago from", "after"), ("after", "before"), ("before", "after"), ("ago", "later")):
            w = re.search(rf"\b{word}\b", seg)
            if w:
                mutated.append(text[: o.start + w.start()] + other + text[o.start + w.end() :])
                break
    if len(claims) >= 2 and claims[0].value == src:
        wrong = rng.choice(near(src))
        mutated.append(text[: claims[0].start] + fmt(wrong) + text[claims[0].end :])
    for t in mutated:
        cs, offs = find_dates(t), find_offsets(t)
        start = cs[0].value if len(cs) >= 2 else src
        reached = offs[0].offset.apply(start) if offs and start is not None else None
        if reached is not None and reached != chain.nodes[node]:
            out.append((_with_last_date(t, reached), reached))
    return out


def wrong_runs(chain: Chain, step: int, rng: random.Random) -> Iterator[tuple[list[str], str]]:
    """The gold steps from `step` (1-based) with one slip in that step
    (`_slips`), the wrong date it reaches moved on by the chain's later moves
    and written into the later steps in place of the right ones: (steps, the
    answer they reach). Nothing for a step that is not one of the chain's."""
    if not 1 <= step <= len(chain.steps):
        return
    node = chain.steps[step - 1][1]
    slips = _slips(chain, step, rng)
    rng.shuffle(slips)
    for text, reached in slips:
        nodes = list(chain.nodes[: node]) + [reached]
        for hop in chain.hops[node:]:
            nxt = hop.apply(nodes[-1])
            if nxt is None:
                break
            nodes.append(nxt)
        else:
            table = {fmt(a): fmt(b) for a, b in zip(chain.nodes[node:], nodes[node:])}
            later = [NUM_DATE_RE.sub(lambda m: table.get(m.group(0), m.group(0)), t) for t, _ in chain.steps[step:]]
            yield [text, *later], fmt(nodes[-1])
