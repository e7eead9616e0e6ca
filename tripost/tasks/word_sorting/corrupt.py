"""Plausible mistakes in word-sorting rationales: one-claim mistakes (for
`corrupt`), and whole wrong runs that carry a mistake to a wrong order (for
`wrong_attempt`, `wrong_runs`)."""

from __future__ import annotations

import copy
import random
import re
import string
from collections.abc import Iterator

from tripost.tasks.base import Problem
from tripost.tasks.word_sorting.check import ENTRY_RE, HENCE_RE, ITEM_RE, ORDER_RE, Checker, Block, Split
from tripost.tasks.word_sorting.render import Read, hence_step
from tripost.tasks.word_sorting.words import common_prefix, letter_at, letter_value, word_list

_TRIES = 4  # misread letters (or swapped words) tried per step before a word is copied wrong


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


def _misreads(words: tuple[str, ...], k: int, rng: random.Random) -> Iterator[tuple[str, str]]:
    """(word, a wrong k-th letter for it) that moves the word past another
    word of `words` by their k-th letters, never onto another word's letter
    (the word is then alone in its group, so the order it lands in is final);
    letters near the true one first, as a slip would be."""
    pairs = []
    for w in sorted(set(words)):
        true = letter_at(w, k)
        others = {letter_at(v, k) for v in words if v != w}
        below = sum(o < true for o in others)
        for c in string.ascii_lowercase:
            if c != true and c not in others and sum(o < c for o in others) != below:
                near = abs(ord(c) - (ord(true) if len(true) == 1 else ord("a") - 1))
                pairs.append((near + 4 * rng.random(), w, c))
    pairs.sort()
    for _, w, c in pairs[:_TRIES]:
        yield w, c


def _misspelt(word: str, words: list[str]) -> str | None:
    """`word` copied wrong: two neighbouring letters swapped, or for a word
    with no two different neighbours its first letter changed; None when
    that gives another word of the list."""
    for i in range(len(word) - 1):
        if word[i] != word[i + 1]:
            out = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
            break
    else:
        out = ("b" if word[0] == "a" else "a") + word[1:]
    return None if out in words else out


def _run(checker: Checker, skip: bool, read: Read = letter_at) -> tuple[list[str], str]:
    """The procedure from `checker`'s state to the end, reading letters with
    `read`: (steps, the order they reach as the answer)."""
    c = copy.deepcopy(checker)
    steps = c.finish(skip, read)
    return steps, " ".join(c.order())


def wrong_runs(words: list[str], kept: list[str] | tuple[str, ...], skip: bool, rng: random.Random) -> Iterator[tuple[list[str], str]]:
    """Runs of the procedure from the step after `kept` (correct steps) with
    one mistake in that step, carried to the end: (steps, the answer).

    - a letters step or an order step: one word's letter misread there (its
      number too) and read so from then on, so the word lands out of order;
    - the closing "Hence" step: two neighbouring words swapped;
    - last resort (e.g. a one-word list): a word of the step copied wrong and
      carried to the answer.
    Nothing when `kept` is not a correct prefix the checker can replay."""
    checker = Checker(words)
    for text in kept:
        if checker.step(text) is not None:
            return
    st = checker.state
    if st.done:
        return
    open_i = st.first_open()
    if st.started and st.split is None and open_i is None:  # the "Hence" step
        order = checker.order()
        pairs = [i for i in range(len(order) - 1) if order[i] != order[i + 1]]
        rng.shuffle(pairs)
        for i in pairs[:_TRIES]:
            swapped = order[:]
            swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
            yield [hence_step(swapped)], " ".join(swapped)
        mentioned = order
    else:
        if st.split is not None:  # the order step of a split the letters step before made
            mentioned, k = list(st.split.listed), st.split.k
        elif not st.started:
            mentioned, k = list(st.blocks[0].words), 1
        else:
            block = st.blocks[open_i]  # type: ignore[index]
            mentioned, k = list(block.words), (common_prefix(block.words) + 1 if skip else block.depth + 1)
        for w, c in _misreads(tuple(mentioned), k, rng):
            yield _run(checker, skip, lambda x, j, w=w, c=c, k=k: c if x == w and j == k else letter_at(x, j))
    for w in rng.sample(sorted(set(mentioned)), min(2, len(set(mentioned)))):
        wrong = _misspelt(w, words)
        if wrong is not None:
            yield _run(_copied_wrong(checker, w, wrong), skip)


def _copied_wrong(checker: Checker, word: str, wrong: str) -> Checker:
    """A copy of `checker` whose state holds `wrong` wherever it held `word`."""
    c = copy.deepcopy(checker)

    def swap(ws: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(wrong if x == word else x for x in ws)

    c.state.blocks = [Block(swap(b.words), b.depth) for b in c.state.blocks]
    if c.state.split is not None:
        c.state.split = Split(c.state.split.block, c.state.split.k, swap(c.state.split.listed))
    return c
