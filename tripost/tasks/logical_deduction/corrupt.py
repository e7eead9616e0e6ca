"""Edits of a correct logical-deduction step that make one claim false (for `corrupt`)."""

from __future__ import annotations

import random

from tripost.tasks.logical_deduction.check import (
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
