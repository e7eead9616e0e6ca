"""Arithmetic expressions as trees: parse (never `eval()`), render, evaluate,
and reduce one operation at a time in TriPosT's order.

Numbers are integers, operators + - * with the usual precedence, and
parentheses; upper-case names stand for named groups (`(A - B)`). Model text
can be anything, so parsing is linear and bounded (depth, digits, bits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Union

OPERATORS = "+-*"

# Parser limits: model text can be anything; these keep parsing linear and
# the numbers small enough to print.
_MAX_DEPTH = 40
MAX_DIGITS = 30
_MAX_BITS = 4000


@dataclass(frozen=True)
class Num:
    value: int


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Group:
    """A flat sequence `a op b op c ...` (precedence applies inside it).
    Always at least two items: single-item parentheses collapse at parse time."""

    items: tuple["Node", ...]
    ops: tuple[str, ...]


Node = Union[Num, Var, Group]


class ParseError(Exception):
    """Text that is not an expression, or a number too long or too large."""


class _Unknown(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


# Same-length replacements only, so positions in the normalised text are
# positions in the original (segments must be verbatim substrings).
TRANSLATE = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": "*", "\u2217": "*", "\u00b7": "*"})
_TOKEN_RE = re.compile(r"(?P<num>[0-9]+)|(?P<var>[A-Z][A-Za-z0-9_]*)|(?P<sym>[()+*\-])")


def _tokenize(text: str) -> list[tuple[str, str]]:
    text = text.translate(TRANSLATE)
    out: list[tuple[str, str]] = []
    pos, n = 0, len(text)
    while pos < n:
        if text[pos].isspace():
            pos += 1
            continue
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise ParseError(f"unexpected {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind == "num" and len(m.group()) > MAX_DIGITS:
            raise ParseError("number too long")
        out.append((kind, m.group()))
        pos = m.end()
    return out


class _Parser:
    """seq := operand (op operand)* ; operand := '(' seq ')' | [+-] number | number | Var."""

    def __init__(self, tokens: list[tuple[str, str]]):
        self.toks = tokens
        self.i = 0

    def _peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _next(self) -> tuple[str, str]:
        t = self._peek()
        if t is None:
            raise ParseError("unexpected end")
        self.i += 1
        return t

    def seq(self, depth: int) -> Node:
        items = [self.operand(depth)]
        ops: list[str] = []
        while (t := self._peek()) is not None and t[0] == "sym" and t[1] in OPERATORS:
            self.i += 1
            ops.append(t[1])
            items.append(self.operand(depth))
        return items[0] if len(items) == 1 else Group(tuple(items), tuple(ops))

    def operand(self, depth: int) -> Node:
        kind, val = self._next()
        if kind == "sym" and val == "(":
            if depth >= _MAX_DEPTH:
                raise ParseError("nested too deeply")
            node = self.seq(depth + 1)
            if self._next() != ("sym", ")"):
                raise ParseError("expected ')'")
            return node
        if kind == "sym" and val in "+-":
            kind2, val2 = self._next()
            if kind2 != "num":
                raise ParseError("a sign must precede a number")
            return Num(-int(val2) if val == "-" else int(val2))
        if kind == "num":
            return Num(int(val))
        if kind == "var":
            return Var(val)
        raise ParseError(f"unexpected {val!r}")


def parse_expression(text: str) -> Node | None:
    """The expression tree of `text`, or None when it is not an expression of
    integers, + - *, parentheses and upper-case variable names."""
    try:
        toks = _tokenize(text)
        if not toks:
            return None
        parser = _Parser(toks)
        node = parser.seq(0)
        return node if parser.i == len(toks) else None
    except (ParseError, RecursionError, ValueError):
        return None


def render(node: Node) -> str:
    if isinstance(node, Num):
        return str(node.value)
    if isinstance(node, Var):
        return node.name
    parts = [render(node.items[0])]
    for op, item in zip(node.ops, node.items[1:]):
        parts += [op, render(item)]
    return "(" + " ".join(parts) + ")"


def bare(node: Node) -> str:
    """Rendered without the outer parentheses (for reasons: `-3 + 10 = 7`)."""
    text = render(node)
    return text[1:-1] if isinstance(node, Group) else text


def _apply(a: int, op: str, b: int) -> int:
    r = a + b if op == "+" else a - b if op == "-" else a * b
    if r.bit_length() > _MAX_BITS:
        raise ParseError("number too large")
    return r


def value_of(node: Node, env: dict[str, int] | None = None) -> int:
    """Value with the usual precedence (* before + and -, left to right).
    Raises _Unknown for a variable missing from `env`."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Var):
        if env is None or node.name not in env:
            raise _Unknown(node.name)
        return env[node.name]
    vals = [value_of(item, env) for item in node.items]
    terms, signs = [vals[0]], []
    for op, v in zip(node.ops, vals[1:]):
        if op == "*":
            terms[-1] = _apply(terms[-1], "*", v)
        else:
            signs.append(op)
            terms.append(v)
    total = terms[0]
    for op, t in zip(signs, terms[1:]):
        total = _apply(total, op, t)
    return total


def try_value(node: Node, env: dict[str, int]) -> tuple[int | None, str | None]:
    """(value, None), (None, missing variable) or (None, None) when too large."""
    try:
        return value_of(node, env), None
    except _Unknown as e:
        return None, e.name
    except (ParseError, RecursionError):
        return None, None


def is_innermost(node: Node) -> bool:
    return isinstance(node, Group) and all(isinstance(i, Num) for i in node.items)


def variables(node: Node) -> list[str]:
    """Variable names in order of first appearance."""
    # A dict, not a list, to test "seen": a list made this quadratic in the
    # number of variables (one per innermost group).
    out: dict[str, None] = {}

    def walk(n: Node) -> None:
        if isinstance(n, Var):
            out.setdefault(n.name)
        elif isinstance(n, Group):
            for i in n.items:
                walk(i)

    walk(node)
    return list(out)


def count_numbers(node: Node) -> int:
    if isinstance(node, Group):
        return sum(count_numbers(i) for i in node.items)
    return 1 if isinstance(node, Num) else 0


def substitute(node: Node, table: dict[str, Node]) -> Node:
    if isinstance(node, Var):
        return table.get(node.name, node)
    if isinstance(node, Group):
        return Group(tuple(substitute(i, table) for i in node.items), node.ops)
    return node


def subtrees(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, Group):
        for item in node.items:
            yield from subtrees(item)


def valid_ops(g: Group) -> list[int]:
    """Operations that may come next in a group: any `*` between two numbers,
    or the first operation when it is + or - and not followed by a `*`."""
    out = []
    for i, op in enumerate(g.ops):
        if not (isinstance(g.items[i], Num) and isinstance(g.items[i + 1], Num)):
            continue
        if op == "*" or (i == 0 and (len(g.ops) == 1 or g.ops[1] != "*")):
            out.append(i)
    return out


def reduce_at(g: Group, i: int) -> tuple[Node, tuple[int, int, int, str]]:
    a, b = g.items[i], g.items[i + 1]
    assert isinstance(a, Num) and isinstance(b, Num)
    r = _apply(a.value, g.ops[i], b.value)
    items = g.items[:i] + (Num(r),) + g.items[i + 2 :]
    ops = g.ops[:i] + g.ops[i + 1 :]
    node: Node = Num(r) if len(items) == 1 else Group(items, ops)
    return node, (a.value, b.value, r, g.ops[i])


def _step_once(node: Node) -> Node:
    """One operation in the standard order: the leftmost innermost group, its
    first `*` if any, else its first operation (TriPosT's one-op-per-`=`)."""
    assert isinstance(node, Group)
    if is_innermost(node):
        i = node.ops.index("*") if "*" in node.ops else 0
        return reduce_at(node, i)[0]
    for j, item in enumerate(node.items):
        if isinstance(item, Group):
            return Group(node.items[:j] + (_step_once(item),) + node.items[j + 1 :], node.ops)
    raise AssertionError("a group with no group inside is innermost")


def reduction_chain(node: Node) -> Iterator[Node]:
    """`node`, then one operation at a time down to a number. A generator: the
    caller renders each tree and drops it, so only the text is kept, not
    every intermediate tree as well."""
    yield node
    while isinstance(node, Group):
        node = _step_once(node)
        yield node
