"""Random puzzles with exactly one solution, and their gold rationales."""

from __future__ import annotations

import random

from tripost.errors import TripostError
from tripost.format import render_rationale
from tripost.tasks.base import Problem
from tripost.tasks.logical_deduction.check import Checker, State
from tripost.tasks.logical_deduction.puzzle import MAX_N, MIN_N, Clue, Puzzle, render_question
from tripost.tasks.logical_deduction.scenes import LETTERS, SCENES, at_sentence, pos_phrase, rel_sentence
from tripost.tasks.logical_deduction.space import Space, space_of

FAMILY = "logical_deduction"


def generate_problem(rng: random.Random, level: str) -> Problem:
    """A puzzle of `level` objects (id, split and subset are set by `sample_problems`)."""
    try:
        n = int(str(level))
    except ValueError:
        n = 0
    if not MIN_N <= n <= MAX_N:
        raise TripostError(f"logical_deduction: unknown level {level!r} (expected a number of objects, {MIN_N} to {MAX_N})")
    scene = SCENES[rng.choice(sorted(SCENES))]
    objects = rng.sample(scene.pool, n)
    solution = list(range(1, n + 1))
    rng.shuffle(solution)
    sp = space_of(n)
    keys = _clues(rng, sp, solution)
    texts: list[str] = []
    for kind, a, b in keys:
        if kind == "at":
            sentence = at_sentence(scene, objects[a], pos_phrase(scene, b, n, rng.random() < 0.5), cap=True)
        else:
            sentence = rel_sentence(scene, objects[a], objects[b], rng.random() < 0.5, cap=True)
        texts.append(sentence + ".")
    q = rng.randint(1, n)
    from_end = rng.random() < 0.5
    option_texts = tuple(at_sentence(scene, o, pos_phrase(scene, q, n, from_end), cap=True) for o in objects)
    answer_index = solution.index(q)
    pz = Puzzle(
        scene, tuple(objects), tuple(solution),
        tuple(Clue(k, t) for k, t in zip(keys, texts)),
        tuple((o, q) for o in range(n)), option_texts, answer_index,
    )
    answer = f"({LETTERS[answer_index]})"
    steps = Checker(pz).finish(State(sp.full))
    return Problem(
        id="",
        family=FAMILY,
        question=render_question(scene, objects, texts, list(option_texts)),
        answer=answer,
        rationale=render_rationale(steps, answer),
        difficulty=str(n),
        options=option_texts,
        meta=pz.to_meta(),
    )


def _clues(rng: random.Random, sp: Space, solution: list[int]) -> list[tuple[str, int, int]]:
    """True clues, added at random while they narrow the orders down, until
    one order is left; then any clue the rest already imply is dropped."""
    n = len(solution)
    cands: list[tuple[str, int, int]] = [("at", o, solution[o]) for o in range(n)]
    cands += [("before", a, b) for a in range(n) for b in range(n) if solution[a] < solution[b]]
    # Placing clues settle more at once; holding them back a little keeps
    # puzzles closer to BIG-bench's, which are mostly relative clues.
    weights = [rng.random() + (0.35 if k[0] == "at" else 0.0) for k in cands]
    cands = [k for _, k in sorted(zip(weights, cands))]

    def mask(k: tuple[str, int, int]) -> int:
        return sp.at[k[1]][k[2]] if k[0] == "at" else sp.before[k[1]][k[2]]

    orders, chosen = sp.full, []
    for k in cands:
        narrowed = orders & mask(k)
        if narrowed != orders:
            chosen.append(k)
            orders = narrowed
            if orders.bit_count() == 1:
                break
    order = list(range(len(chosen)))
    rng.shuffle(order)
    keep = set(order)
    for i in order:
        rest = sp.full
        for j in keep - {i}:
            rest &= mask(chosen[j])
        if rest.bit_count() == 1:
            keep.discard(i)
    out = [chosen[i] for i in sorted(keep)]
    rng.shuffle(out)
    return out
