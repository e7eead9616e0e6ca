"""Plausible one-claim mistakes in word-sorting rationales (for `corrupt`)."""

from __future__ import annotations

import random
import re

from tripost.tasks.base import Problem
from tripost.tasks.word_sorting.check import ENTRY_RE, HENCE_RE, ITEM_RE, ORDER_RE
from tripost.tasks.word_sorting.words import letter_value, word_list


def wrong_answers(problem: Problem, rng: random.Random) -> list[str]:
    words = problem.answer.split()
    out: list[str] = []
    if len(set(words)) > 1:
        i = rng.randrange(len(words) - 1)
        while words[i] == words[i + 1]:
            i = (i + 1) % (len(words) - 1)
        swapped = words[:]
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        out.append(" ".join(swapped))
        out.append(" ".join(reversed(words)))
    if len(words) > 1:
        dropped = words[:]
        del dropped[rng.randrange(len(words))]
        out.append(" ".join(dropped))
    other = rng.choice([w for w in word_list()[:200] if w not in words])
    out.append(" ".join(sorted(words + [other])))
    return out


def wrong_steps(step: str, problem: Problem, rng: random.Random) -> list[str]:
    """Plausible one-claim mistakes in a gold step, most natural first."""
    out: list[str] = []
    items = list(ITEM_RE.finditer(step))
    entries = list(ENTRY_RE.finditer(step)) if ORDER_RE.match(step) else []
    if items and not ORDER_RE.match(step):
        im = rng.choice(items)
        w, c, num = im.group(1), im.group(2), int(im.group(3))
        wrong_c = rng.choice([x for x in "abcdefghijklmnopqrstuvwxyz" if x != c])
        kind = rng.random()
        letter_swap = f'"{w}"="{wrong_c}" ({letter_value(wrong_c)})'
        number_off = f'"{w}"="{c}" ({num + rng.choice([-2, -1, 1, 2, 3])})'
        for rep in (letter_swap, number_off) if kind < 0.5 else (number_off, letter_swap):
            out.append(step[: im.start()] + rep + step[im.end() :])
    elif entries:
        if len(entries) >= 2:
            i = rng.randrange(len(entries) - 1)
            a, b = entries[i], entries[i + 1]
            out.append(step[: a.start()] + b.group(0) + step[a.end() : b.start()] + a.group(0) + step[b.end() :])
        e = rng.choice(entries)
        num = int(e.group(1))
        out.append(step[: e.start(1)] + str(num + rng.choice([1, 2, -1])) + step[e.end(1) :])
    elif HENCE_RE.match(step):
        quoted = list(re.finditer(r'"([^"]*)"', step))
        pairs = [i for i in range(len(quoted) - 1) if quoted[i].group(1) != quoted[i + 1].group(1)]
        if pairs:
            i = rng.choice(pairs)
            a, b = quoted[i], quoted[i + 1]
            out.append(step[: a.start()] + b.group(0) + step[a.end() : b.start()] + a.group(0) + step[b.end() :])
        if quoted:
            q = rng.choice(quoted)
            other = rng.choice([w for w in word_list()[:200] if w not in problem.answer.split()])
            out.append(step[: q.start()] + f'"{other}"' + step[q.end() :])
    return out
