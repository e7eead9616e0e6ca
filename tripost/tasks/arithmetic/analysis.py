"""One arithmetic problem understood: its tree, value, innermost groups named
A, B, ... (the gold rationale's naming step), size and difficulty label."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tripost.errors import TripostError
from tripost.tasks.arithmetic.expr import (
    Group,
    Node,
    ParseError,
    Var,
    count_numbers,
    is_innermost,
    parse_expression,
    subtrees,
    value_of,
    variables,
)
from tripost.tasks.external import MAX_QUESTION_CHARS
from tripost.tasks.family import clip

# Problem size. Parsing is linear, but the gold rationale does one operation
# per "=", so a group of n numbers is written out n - 1 times and the
# rationale grows with the square of n: one group of 10,000 numbers took 11 to
# 23 s and 1.2 GB (a 200 MB rationale), one of 50,000 was killed for memory at
# 17.6 GB. TriPosT's largest level has 24 numbers (len3-2-2-2); the worst case
# at 32, one group of -9 * -9 * ..., writes a 3,300-character rationale, about
# what a 2,048-token training row holds. Numbers are counted on the parsed
# tree, in linear time, before any rationale is written; the rationale is then
# bounded once more by MAX_RATIONALE_CHARS (long numbers make long lines).
MAX_NUMBERS = 32


def _var_name(i: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[i] if i < 26 else f"{letters[i % 26]}{i // 26}"


@dataclass(frozen=True)
class Analysis:
    """Everything the checker and the teacher need about one expression."""

    root: Node
    value: int
    pattern: Node  # the root with innermost groups named A, B, ...
    defs: tuple[tuple[str, Node], ...]
    subtrees: frozenset[Node]
    length: int
    shape: str

    @property
    def answer(self) -> str:
        return str(self.value)

    @property
    def label(self) -> str:
        return f"len{self.length}-{self.shape}"


def shape_of(root: Node) -> str:
    if is_innermost(root):
        return "1"

    def sig(node: Node) -> tuple[int, ...] | None:
        if is_innermost(node):
            return ()
        if not isinstance(node, Group) or not all(isinstance(i, Group) for i in node.items):
            return None
        subs = [sig(i) for i in node.items]
        if any(s is None for s in subs) or len(set(subs)) != 1:
            return None
        return (len(node.items),) + subs[0]  # type: ignore[operator]

    def depth(node: Node) -> int:
        return 0 if not isinstance(node, Group) else 1 + max(depth(i) for i in node.items)

    s = sig(root)
    return "-".join(str(b) for b in s) if s is not None else f"mixed{depth(root)}"


@functools.lru_cache(maxsize=4096)
def analyse(expression: str) -> Analysis:
    # Checked here, not only in from_record: a `tasks sample` record reaches
    # this through its meta's expression.
    if len(expression) > MAX_QUESTION_CHARS:
        raise TripostError(
            f"arithmetic: the expression is {len(expression):,} characters long, more than the {MAX_QUESTION_CHARS:,} accepted"
        )
    root = parse_expression(expression)
    if root is None:
        raise TripostError(
            f"arithmetic: cannot parse {clip(expression, 80)!r}: expected integers, + - * and parentheses, "
            "such as '((-3 + 5 * 2) - (7 - -1)) ='"
        )
    if variables(root):
        raise TripostError(f"arithmetic: {clip(expression, 80)!r} has letters; only numbers can be calculated")
    if not isinstance(root, Group):
        raise TripostError(f"arithmetic: {clip(expression, 80)!r} has no operation to calculate")
    n_numbers = count_numbers(root)
    if n_numbers > MAX_NUMBERS:
        raise TripostError(
            f"arithmetic: {clip(expression, 80)!r} has {n_numbers} numbers, more than the {MAX_NUMBERS} accepted "
            "(the step-by-step rationale grows with the square of a group's length)"
        )
    try:
        value = value_of(root)
    except ParseError:
        raise TripostError(f"arithmetic: {clip(expression, 80)!r} is too large to calculate") from None
    defs: list[tuple[str, Node]] = []

    def name_groups(node: Node) -> Node:
        if is_innermost(node):
            name = _var_name(len(defs))
            defs.append((name, node))
            return Var(name)
        if isinstance(node, Group):
            return Group(tuple(name_groups(i) for i in node.items), node.ops)
        return node

    pattern = name_groups(root)
    length = max(len(g.items) for _, g in defs)  # type: ignore[union-attr]
    return Analysis(root, value, pattern, tuple(defs), frozenset(subtrees(root)), length, shape_of(root))


def expression_of_question(question: str) -> str:
    """`((1 + 2) * 3) =` -> `((1 + 2) * 3)`."""
    q = question.strip()
    if q.endswith("="):
        q = q[:-1].rstrip()
    return q
