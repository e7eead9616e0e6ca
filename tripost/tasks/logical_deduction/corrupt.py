"""Edits of a correct logical-deduction step that make one claim false (for
`corrupt`), and whole wrong runs that carry a wrong position on to a wrong
option (for `wrong_attempt`, `wrong_runs`)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace

from tripost.tasks.logical_deduction.check import (
    Checker,
    OPTION_HEAD_RE,
    ORDER_HEAD_RE,
    ORDER_RE,
    QUOTE_RE,
    blank_quotes,
    parse_option_step,
)
from tripost.tasks.logical_deduction.puzzle import Puzzle
from tripost.tasks.logical_deduction.scenes import LETTERS, at_sentence, pos_phrase, rel_sentence


def wrong_steps(pz: Puzzle, step: str, rng: random.Random) -> list[str]:
    """Edits of a correct step that make one claim in it false."""
    out: list[str] = []
    reader = pz.reader
    om = parse_option_step(step)
    if OPTION_HEAD_RE.match(step) and om:
        flipped = {"true": "false", "false": "true", "correct": "incorrect", "incorrect": "correct", "right": "wrong", "wrong": "right"}
        (vs, ve), (ls, le) = om.verdict_span, om.letter_span
        out.append(step[:vs] + flipped.get(om.verdict.lower(), "false") + step[ve:])
        idx = LETTERS.find(om.letter.upper())
        others = [i for i in range(len(pz.options)) if i != idx]
        if others:
            out.append(step[:ls] + LETTERS[rng.choice(others)] + step[le:])
    elif ORDER_HEAD_RE.search(step) and (m := ORDER_RE.search(step)):
        names = [pz.objects[o] for o in sorted(range(pz.n), key=lambda o: pz.solution[o])]
        i = rng.randrange(pz.n - 1)
        names[i], names[i + 1] = names[i + 1], names[i]
        out.append(step[: m.start("list")] + " " + ", ".join(names) + ".")
    else:
        blank = blank_quotes(step)
        edits: list[str] = []
        for c in reader.claims(blank):
            if c.kind != "at" or c.b is None:
                continue
            wrong = [p for p in range(1, pz.n + 1) if p != c.b]
            p = rng.choice(wrong)
            edits.append(step[: c.start] + pz.claim_text(c.a, p) + step[c.end :])
        for q in QUOTE_RE.finditer(step):
            content = q.group(1) if q.group(1) is not None else q.group(2)
            key = reader.statement(content)
            if key is None:
                continue
            kind, a, b = key
            if kind == "before":
                said = rel_sentence(pz.scene, pz.objects[b], pz.objects[a], rng.random() < 0.5, cap=True)
            else:
                p = rng.choice([p for p in range(1, pz.n + 1) if p != b])
                said = at_sentence(pz.scene, pz.objects[a], pos_phrase(pz.scene, p, pz.n, rng.random() < 0.5), cap=True)
            edits.append(step[: q.start()] + f'"{said}"' + step[q.end() :])
        rng.shuffle(edits)
        out.extend(edits)
    return out


_TRIES = 4  # wrong beliefs tried per step


def gold_plan(pz: Puzzle) -> list[tuple[tuple[int, ...], list[int]]]:
    """The deductions of the gold rationale (`Checker.finish` from nothing
    known): (the clues quoted, the objects placed), in order."""
    checker, sp = Checker(pz), pz.space
    orders, plan = sp.full, []
    while orders.bit_count() > 1:
        found = checker.best_deduction(orders)
        if found is None:  # cannot happen: the clues together allow one order
            break
        plan.append(found)
        for o in found[1]:
            orders &= sp.at[o][pz.solution[o]]
    return plan


def _believed(pz: Puzzle, a: int, b: int) -> Puzzle | None:
    """The puzzle as a student who swapped objects `a` and `b` believes it
    solved: their positions swapped, an option true in that order (not the
    right one) its answer; None when that order makes no other option true."""
    sol = list(pz.solution)
    sol[a], sol[b] = sol[b], sol[a]
    answer = next((i for i, (o, p) in enumerate(pz.options) if sol[o] == p and i != pz.answer_index), None)
    return None if answer is None else replace(pz, solution=tuple(sol), answer_index=answer)


def wrong_runs(pz: Puzzle, steps: list[str] | tuple[str, ...], step: int, rng: random.Random) -> Iterator[tuple[list[str], str]]:
    """The gold rationale's steps from `step` (1-based) written from a wrong
    belief that starts there, carried to a wrong option: (steps, the answer).

    - a deduction: two objects swapped, one of them placed by this step (so
      its claim is false), in a way that moves the object the options ask
      about; objects placed by earlier steps stay put unless no other swap
      does (then the step contradicts an earlier one). The later deductions
      place the objects where that belief puts them, the order is that
      belief's, and the option it makes true is the answer;
    - the order step: the object the options ask about swapped with another;
    - the option step: another option called true.
    Nothing when `steps` are not the puzzle's gold steps."""
    plan = gold_plan(pz)
    gold = [pz.deduction_text(c, new) for c, new in plan] + [pz.order_text(), pz.option_step(pz.answer_index)]
    if list(steps) != gold or not 1 <= step <= len(gold):
        return
    if step == len(gold):  # the option step
        others = [i for i in range(len(pz.options)) if i != pz.answer_index]
        rng.shuffle(others)
        for i in others[:_TRIES]:
            yield [pz.option_step(i)], f"({LETTERS[i]})"
        return
    asked = pz.options[pz.answer_index][0]  # the object at the position the options ask about
    if step == len(gold) - 1:  # the order step
        swaps = [(asked, b) for b in range(pz.n) if b != asked]
    else:
        fixed = {o for _, new in plan[: step - 1] for o in new}
        placed = plan[step - 1][1]
        swaps = [(a, b) for a in placed for b in range(pz.n) if b != a and asked in (a, b) and b not in fixed]
        if not swaps:  # the object asked about was placed before: contradict that
            swaps = [(a, asked) for a in placed if a != asked]
    rng.shuffle(swaps)
    for a, b in swaps[:_TRIES]:
        believed = _believed(pz, a, b)
        if believed is None:
            continue
        out = [believed.deduction_text(c, new) for c, new in plan[step - 1 :]] if step < len(gold) - 1 else []
        out += [believed.order_text(), believed.option_step(believed.answer_index)]
        yield out, f"({LETTERS[believed.answer_index]})"
