"""Arithmetic problems from a difficulty level, and their gold rationales.

A level reads `len3-2-2`: 3 numbers per innermost group (the length), and
the nesting shape '2-2' (two groups of two groups); '1' is a single group.
The gold rationale follows TriPosT's (Yu et al. 2024, Table 1): name the
innermost groups, compute each, then the final equation, one operation per
`=`. `continue_steps` writes the same steps from any correct prefix, which
is how the scripted teacher finishes an attempt; `wrong_runs` writes them
with one slip carried through to a wrong answer (the demo source's attempts).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence

from tripost.errors import TripostError
from tripost.tasks.arithmetic.analysis import Analysis
from tripost.tasks.arithmetic.check import State
from tripost.tasks.arithmetic.expr import (
    OPERATORS,
    Group,
    Node,
    Num,
    Var,
    is_innermost,
    reduction_chain,
    render,
    substitute,
    value_of,
    variables,
)

# How many slips `wrong_runs` tries for one step before giving up (a slip
# whose effect cancels out, e.g. a factor 0, is not a wrong answer).
_SLIP_TRIES = 12

# Levels per preset. `paper` follows TriPosT (seen: 3-4 numbers per group,
# nesting 2 and 2-2; unseen: longer groups or deeper nesting). `small` is for
# the 135M student: short lines and at most 4 steps. Its single-group level
# uses 3 numbers (not 2) because `(a op b)` has only 19*3*19 = 1,083
# questions, ~108 per val/test split: too few for `sample_problems` to draw
# hundreds; `(a op b op c)` has 61,731 and still fits in one short step.
LEVELS: dict[str, dict[str, list[str]]] = {
    "small": {"seen": ["len3-1", "len2-2"], "unseen": ["len3-2"]},
    "paper": {
        "seen": ["len3-2", "len4-2", "len3-2-2", "len4-2-2"],
        "unseen": ["len5-2", "len5-2-2", "len3-2-2-2"],
    },
}
_LEVEL_RE = re.compile(r"^len([2-9])-(1|[2-9](?:-[2-9]){0,3})$")

NUMBER_RANGE = (-9, 9)  # BIG-bench's operands


def random_expression(rng: random.Random, level: str) -> Group:
    """A random expression of `level`'s length and nesting shape."""
    m = _LEVEL_RE.match(level)
    if not m:
        raise TripostError(f"arithmetic: unknown level {level!r}; levels look like 'len3-2' (length 3, nesting 2) or 'len2-1'")
    length = int(m.group(1))
    branching = [] if m.group(2) == "1" else [int(b) for b in m.group(2).split("-")]
    lo, hi = NUMBER_RANGE

    def build(rest: list[int]) -> Group:
        if not rest:
            items: tuple[Node, ...] = tuple(Num(rng.randint(lo, hi)) for _ in range(length))
            return Group(items, tuple(rng.choice(OPERATORS) for _ in range(length - 1)))
        children = tuple(build(rest[1:]) for _ in range(rest[0]))
        return Group(children, tuple(rng.choice(OPERATORS) for _ in range(rest[0] - 1)))

    return build(branching)


def _decomposition_text(pattern: Node, defs: list[tuple[str, Node]] | tuple[tuple[str, Node], ...]) -> str:
    parts = [f"{n} = {render(g)}" for n, g in defs]
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f'This equation can be written as "{render(pattern)}", where {joined}.'


def _calc_text(name: str | None, node: Node) -> str:
    chain = " = ".join(render(n) for n in reduction_chain(node))
    return f"Let's calculate {name} = {chain}." if name else f"Let's calculate {chain}."


def _final_text(pattern: Node, values: dict[str, int]) -> str:
    sub = substitute(pattern, {k: Num(v) for k, v in values.items()})
    chain = " = ".join([render(pattern)] + [render(n) for n in reduction_chain(sub)])
    return f"Then, the final equation is {chain}."


def continue_steps(a: Analysis, state: State) -> list[str]:
    """Correct steps from `state` to the value of the whole equation, reusing
    what is done (names, order, computed values) and writing only the rest."""
    if state.root_value is not None:
        return []
    steps: list[str] = []
    if state.pattern is None or state.defs is None:
        if is_innermost(a.root):
            return [_calc_text(None, a.root)]
        steps.append(_decomposition_text(a.pattern, a.defs))
        pattern, defs, values = a.pattern, dict(a.defs), {}
    else:
        pattern, defs, values = state.pattern, state.defs, dict(state.values)
    for name in variables(pattern):
        if name not in values:
            steps.append(_calc_text(name, defs[name]))
            values[name] = value_of(defs[name])
    if not isinstance(pattern, Var):  # a lone variable: computing it was the whole equation
        steps.append(_final_text(pattern, values))
    return steps


def _nudged(node: Node, rng: random.Random, deltas: Sequence[int]) -> Node:
    """`node` with one of its numbers (drawn by `rng`) moved by one of `deltas`."""
    paths: list[tuple[int, ...]] = []

    def walk(n: Node, path: tuple[int, ...]) -> None:
        if isinstance(n, Num):
            paths.append(path)
        elif isinstance(n, Group):
            for j, item in enumerate(n.items):
                walk(item, path + (j,))

    walk(node, ())
    if not paths:
        return node

    def put(n: Node, path: tuple[int, ...]) -> Node:
        if not path:
            assert isinstance(n, Num)
            return Num(n.value + rng.choice(deltas))
        assert isinstance(n, Group)
        j = path[0]
        return Group(n.items[:j] + (put(n.items[j], path[1:]),) + n.items[j + 1 :], n.ops)

    return put(node, rng.choice(paths))


def _slipped_chain(node: Node, rng: random.Random, deltas: Sequence[int], first: int = 1) -> list[Node]:
    """`node`'s reduction chain with one number of one link (from link
    `first` on; 0 is `node` itself) written wrong, and the chain then reduced
    on from the wrong link."""
    chain = list(reduction_chain(node))
    j = rng.randrange(min(first, len(chain) - 1), len(chain))
    return chain[:j] + list(reduction_chain(_nudged(chain[j], rng, deltas)))


def _chain_text(head: str, nodes: list[Node]) -> str:
    return f"{head}{' = '.join(render(n) for n in nodes)}."


def wrong_runs(a: Analysis, step: int, rng: random.Random, deltas: Sequence[int]) -> Iterator[tuple[list[str], str]]:
    """Runs of the gold procedure from step `step` (1-based) with one slip in
    that step, carried through: (steps from `step` on, the answer they reach).

    The slip is one number written wrong (moved by one of `deltas`): in a
    definition of the naming step (that group is then calculated as written),
    or in a link of a calculation or of the final equation (the chain is then
    reduced on from the wrong link, and a wrong variable's value goes into
    the final equation). Nothing when `step` is not a step of the gold
    procedure."""
    gold = continue_steps(a, State(a))
    if not 1 <= step <= len(gold):
        return
    if is_innermost(a.root):  # one step: "Let's calculate (3 + -4) = -1."
        for _ in range(_SLIP_TRIES):
            chain = _slipped_chain(a.root, rng, deltas)
            yield [_chain_text("Let's calculate ", chain)], render(chain[-1])
        return
    pattern, defs = a.pattern, dict(a.defs)
    names = variables(pattern)
    values = {name: value_of(defs[name]) for name in names}

    def final(vals: dict[str, int]) -> tuple[str, str]:
        sub = substitute(pattern, {k: Num(v) for k, v in vals.items()})
        chain = [pattern] + list(reduction_chain(sub))
        return _final_text(pattern, vals), render(chain[-1])

    for _ in range(_SLIP_TRIES):
        if step == 1:  # the naming step: a number of one definition copied wrong
            name = rng.choice(names)
            wrong = dict(defs)
            wrong[name] = _nudged(defs[name], rng, deltas)
            vals = {k: value_of(wrong[k]) for k in names}
            text, answer = final(vals)
            steps = [_decomposition_text(pattern, [(k, wrong[k]) for k, _ in a.defs])]
            steps += [_calc_text(k, wrong[k]) for k in names] + [text]
            yield steps, answer
        elif step <= 1 + len(names):  # a calculation: its result wrong, and the final equation with it
            name = names[step - 2]
            chain = _slipped_chain(defs[name], rng, deltas)
            vals = {**values, name: value_of(chain[-1])}
            text, answer = final(vals)
            steps = [_chain_text(f"Let's calculate {name} = ", chain)]
            steps += [_calc_text(k, defs[k]) for k in names[step - 1 :]] + [text]
            yield steps, answer
        else:  # the final equation
            sub = substitute(pattern, {k: Num(v) for k, v in values.items()})
            # Link 0 puts the variables' values in: a wrong one there is a value copied wrong.
            chain = [pattern] + _slipped_chain(sub, rng, deltas, first=0)
            yield [_chain_text("Then, the final equation is ", chain)], render(chain[-1])

