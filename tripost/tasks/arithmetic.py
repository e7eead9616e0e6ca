"""Multistep arithmetic, in BIG-bench's form (`multistep_arithmetic`), as TriPosT used it.

A question is an expression of integers -9..9 with + - * and parentheses:

    ((-3 + 5 * 2) - (7 - -1)) =

Difficulty is the number of numbers per innermost group (the *length*) and the
*nesting shape*: '1' is one group `(a op b ...)`, '2' combines two innermost
groups `(G1 op G2)`, '2-2' combines two of those `((G1 op G2) op (G3 op G4))`,
and so on. A level's label reads `len3-2-2` (length 3, shape '2-2').

The gold rationale follows TriPosT's arithmetic rationale (Yu et al. 2024,
Table 1): name the innermost groups, compute each, then the final equation,
one operation per `=`, respecting precedence:

    (1) This equation can be written as "(A - B)", where A = (-3 + 5 * 2) and B = (7 - -1).
    (2) Let's calculate A = (-3 + 5 * 2) = (-3 + 10) = 7.
    (3) Let's calculate B = (7 - -1) = 8.
    (4) Then, the final equation is (A - B) = (7 - 8) = -1.
    (Final response) So the answer is -1.

A single group (shape '1') skips the naming step: `(1) Let's calculate (3 + -4) = -1.`

The step checker reads any text. It checks meaning, not the gold wording:
every expression of a `X = Y = Z` chain is parsed (never `eval()`ed) and each
link must keep the value; the naming step must name exactly the problem's
innermost groups; a calculation must start from its variable's definition;
variables may be computed in any order and under any names; the final
equation must be the problem's equation with computed values substituted.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Union

from tripost.errors import TripostError
from tripost.format import parse_final_answer, parse_rationale, render_rationale
from tripost.tasks.base import PRESETS, SPLITS, SUBSETS, Problem, StepCheck, problem_id
from tripost.tasks.external import MAX_QUESTION_CHARS, MAX_RATIONALE_CHARS, check_record

# Levels per preset. `paper` follows TriPosT (seen: 3-4 numbers per group,
# nesting 2 and 2-2; unseen: longer groups or deeper nesting). `small` is for
# the 135M student: short lines and at most 4 steps. Its single-group level
# uses 3 numbers (not 2) because `(a op b)` has only 19*3*19 = 1,083
# questions, ~108 per val/test split: too few for `sample_problems` to draw
# hundreds; `(a op b op c)` has 61,731 and still fits in one short step.
_LEVELS: dict[str, dict[str, list[str]]] = {
    "small": {"seen": ["len3-1", "len2-2"], "unseen": ["len3-2"]},
    "paper": {
        "seen": ["len3-2", "len4-2", "len3-2-2", "len4-2-2"],
        "unseen": ["len5-2", "len5-2-2", "len3-2-2-2"],
    },
}
_LEVEL_RE = re.compile(r"^len([2-9])-(1|[2-9](?:-[2-9]){0,3})$")

NUMBER_RANGE = (-9, 9)  # BIG-bench's operands
OPERATORS = "+-*"
FORM = "this step does not follow the expected form"

# Parser limits: model text can be anything; these keep parsing linear and
# the numbers small enough to print.
_MAX_DEPTH = 40
_MAX_DIGITS = 30
_MAX_BITS = 4000
_SCAN = 400  # how far back/forward to look for an expression at a chain's ends
_DIGITS_RE = re.compile(r"[0-9]+")

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


# ---------------------------------------------------------------- trees ---


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


class _ParseError(Exception):
    pass


class _Unknown(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


# Same-length replacements only, so positions in the normalised text are
# positions in the original (segments must be verbatim substrings).
_TRANSLATE = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": "*", "\u2217": "*", "\u00b7": "*"})
_TOKEN_RE = re.compile(r"(?P<num>[0-9]+)|(?P<var>[A-Z][A-Za-z0-9_]*)|(?P<sym>[()+*\-])")


def _tokenize(text: str) -> list[tuple[str, str]]:
    text = text.translate(_TRANSLATE)
    out: list[tuple[str, str]] = []
    pos, n = 0, len(text)
    while pos < n:
        if text[pos].isspace():
            pos += 1
            continue
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise _ParseError(f"unexpected {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind == "num" and len(m.group()) > _MAX_DIGITS:
            raise _ParseError("number too long")
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
            raise _ParseError("unexpected end")
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
                raise _ParseError("nested too deeply")
            node = self.seq(depth + 1)
            if self._next() != ("sym", ")"):
                raise _ParseError("expected ')'")
            return node
        if kind == "sym" and val in "+-":
            kind2, val2 = self._next()
            if kind2 != "num":
                raise _ParseError("a sign must precede a number")
            return Num(-int(val2) if val == "-" else int(val2))
        if kind == "num":
            return Num(int(val))
        if kind == "var":
            return Var(val)
        raise _ParseError(f"unexpected {val!r}")


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
    except (_ParseError, RecursionError, ValueError):
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


def _bare(node: Node) -> str:
    """Rendered without the outer parentheses (for reasons: `-3 + 10 = 7`)."""
    text = render(node)
    return text[1:-1] if isinstance(node, Group) else text


def _apply(a: int, op: str, b: int) -> int:
    r = a + b if op == "+" else a - b if op == "-" else a * b
    if r.bit_length() > _MAX_BITS:
        raise _ParseError("number too large")
    return r


def _value(node: Node, env: dict[str, int] | None = None) -> int:
    """Value with the usual precedence (* before + and -, left to right).
    Raises _Unknown for a variable missing from `env`."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Var):
        if env is None or node.name not in env:
            raise _Unknown(node.name)
        return env[node.name]
    vals = [_value(item, env) for item in node.items]
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


def _try_value(node: Node, env: dict[str, int]) -> tuple[int | None, str | None]:
    """(value, None), (None, missing variable) or (None, None) when too large."""
    try:
        return _value(node, env), None
    except _Unknown as e:
        return None, e.name
    except (_ParseError, RecursionError):
        return None, None


def _is_innermost(node: Node) -> bool:
    return isinstance(node, Group) and all(isinstance(i, Num) for i in node.items)


def _vars(node: Node) -> list[str]:
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


def _count_numbers(node: Node) -> int:
    if isinstance(node, Group):
        return sum(_count_numbers(i) for i in node.items)
    return 1 if isinstance(node, Num) else 0


def _substitute(node: Node, table: dict[str, Node]) -> Node:
    if isinstance(node, Var):
        return table.get(node.name, node)
    if isinstance(node, Group):
        return Group(tuple(_substitute(i, table) for i in node.items), node.ops)
    return node


def _subtrees(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, Group):
        for item in node.items:
            yield from _subtrees(item)


def _valid_ops(g: Group) -> list[int]:
    """Operations that may come next in a group: any `*` between two numbers,
    or the first operation when it is + or - and not followed by a `*`."""
    out = []
    for i, op in enumerate(g.ops):
        if not (isinstance(g.items[i], Num) and isinstance(g.items[i + 1], Num)):
            continue
        if op == "*" or (i == 0 and (len(g.ops) == 1 or g.ops[1] != "*")):
            out.append(i)
    return out


def _reduce_at(g: Group, i: int) -> tuple[Node, tuple[int, int, int, str]]:
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
    if _is_innermost(node):
        i = node.ops.index("*") if "*" in node.ops else 0
        return _reduce_at(node, i)[0]
    for j, item in enumerate(node.items):
        if isinstance(item, Group):
            return Group(node.items[:j] + (_step_once(item),) + node.items[j + 1 :], node.ops)
    raise AssertionError("a group with no group inside is innermost")


def _chain(node: Node) -> Iterator[Node]:
    """`node`, then one operation at a time down to a number. A generator: the
    caller renders each tree and drops it, so only the text is kept, not
    every intermediate tree as well."""
    yield node
    while isinstance(node, Group):
        node = _step_once(node)
        yield node


# ------------------------------------------------- problem analysis ---


def _var_name(i: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[i] if i < 26 else f"{letters[i % 26]}{i // 26}"


@dataclass(frozen=True)
class _Analysis:
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


def _shape(root: Node) -> str:
    if _is_innermost(root):
        return "1"

    def sig(node: Node) -> tuple[int, ...] | None:
        if _is_innermost(node):
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
def _analyse(expression: str) -> _Analysis:
    # Checked here, not only in from_record: a `tasks sample` record reaches
    # this through its meta's expression.
    if len(expression) > MAX_QUESTION_CHARS:
        raise TripostError(
            f"arithmetic: the expression is {len(expression):,} characters long, more than the {MAX_QUESTION_CHARS:,} accepted"
        )
    root = parse_expression(expression)
    if root is None:
        raise TripostError(
            f"arithmetic: cannot parse {_clip(expression)!r}: expected integers, + - * and parentheses, "
            "such as '((-3 + 5 * 2) - (7 - -1)) ='"
        )
    if _vars(root):
        raise TripostError(f"arithmetic: {_clip(expression)!r} has letters; only numbers can be calculated")
    if not isinstance(root, Group):
        raise TripostError(f"arithmetic: {_clip(expression)!r} has no operation to calculate")
    n_numbers = _count_numbers(root)
    if n_numbers > MAX_NUMBERS:
        raise TripostError(
            f"arithmetic: {_clip(expression)!r} has {n_numbers} numbers, more than the {MAX_NUMBERS} accepted "
            "(the step-by-step rationale grows with the square of a group's length)"
        )
    try:
        value = _value(root)
    except _ParseError:
        raise TripostError(f"arithmetic: {_clip(expression)!r} is too large to calculate") from None
    defs: list[tuple[str, Node]] = []

    def name_groups(node: Node) -> Node:
        if _is_innermost(node):
            name = _var_name(len(defs))
            defs.append((name, node))
            return Var(name)
        if isinstance(node, Group):
            return Group(tuple(name_groups(i) for i in node.items), node.ops)
        return node

    pattern = name_groups(root)
    length = max(len(g.items) for _, g in defs)  # type: ignore[union-attr]
    return _Analysis(root, value, pattern, tuple(defs), frozenset(_subtrees(root)), length, _shape(root))


def _clip(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _expression_of_question(question: str) -> str:
    q = question.strip()
    if q.endswith("="):
        q = q[:-1].rstrip()
    return q


# -------------------------------------------------------- step texts ---


def _decomposition_text(pattern: Node, defs: list[tuple[str, Node]] | tuple[tuple[str, Node], ...]) -> str:
    parts = [f"{n} = {render(g)}" for n, g in defs]
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f'This equation can be written as "{render(pattern)}", where {joined}.'


def _calc_text(name: str | None, node: Node) -> str:
    chain = " = ".join(render(n) for n in _chain(node))
    return f"Let's calculate {name} = {chain}." if name else f"Let's calculate {chain}."


def _final_text(pattern: Node, values: dict[str, int]) -> str:
    sub = _substitute(pattern, {k: Num(v) for k, v in values.items()})
    chain = " = ".join([render(pattern)] + [render(n) for n in _chain(sub)])
    return f"Then, the final equation is {chain}."


# ---------------------------------------------------------- checking ---


@dataclass(frozen=True)
class _Err:
    segment: str
    reason: str


def _short(text: str, n: int = 60) -> str:
    """A prefix of `text` (so still a verbatim substring) short enough to quote."""
    return text.strip()[:n].rstrip()


def _strip_span(text: str, s: int, e: int, chars: str = " \t") -> tuple[int, int]:
    while s < e and text[s] in chars:
        s += 1
    while e > s and text[e - 1] in chars:
        e -= 1
    return s, e


_WHERE_RE = re.compile(r"\bwhere\b", re.IGNORECASE)
_WRITTEN_RE = re.compile(r"\bwritten as\b", re.IGNORECASE)
_QUOTED_RE = re.compile(r"[\"\u201c\u201d]([^\"\u201c\u201d]*)[\"\u201c\u201d]")
_AS_RE = re.compile(r"\bas\b", re.IGNORECASE)
_DEF_RE = re.compile(r"(?<![A-Za-z0-9_])([A-Z][A-Za-z0-9_]*)\s*=")
_DEF_TAIL_RE = re.compile(r"[\s,.;:]*(?:\band\b)?[\s,.;:]*$", re.IGNORECASE)


@dataclass(frozen=True)
class _Decomposition:
    pattern: tuple[int, int] | None  # span of the pattern in the step text
    defs: tuple[tuple[str, int, int, int], ...]  # (name, start of name, def start, def end)


def _parse_decomposition(text: str) -> _Decomposition | None:
    """`... written as "(A - B)", where A = (...) and B = (...).`; None when the
    step is not a naming step at all."""
    where = _WHERE_RE.search(text)
    if where is None and _WRITTEN_RE.search(text) is None:
        return None
    head_end = where.start() if where else len(text)
    head = text[:head_end]
    span: tuple[int, int] | None = None
    quoted = list(_QUOTED_RE.finditer(head))
    if quoted:
        span = _strip_span(text, quoted[-1].start(1), quoted[-1].end(1))
    else:
        as_ = list(_AS_RE.finditer(head))
        if as_:
            span = _strip_span(text, as_[-1].end(), head_end, " \t,;:")
    if span is not None and span[0] >= span[1]:
        span = None
    defs: list[tuple[str, int, int, int]] = []
    if where is not None:
        matches = list(_DEF_RE.finditer(text, where.end()))
        for j, m in enumerate(matches):
            end = matches[j + 1].start() if j + 1 < len(matches) else len(text)
            region = text[m.end() : end]
            tail = _DEF_TAIL_RE.search(region)
            cut = m.end() + (tail.start() if tail else len(region))
            s, e = _strip_span(text, m.end(), cut)
            defs.append((m.group(1), m.start(), s, e))
    return _Decomposition(span, tuple(defs))


_Elem = tuple[Node, int, int]  # a chain element and its span in the step text


def _parse_chain(text: str) -> list[_Elem] | _Err | None:
    """`prose X = Y = Z.` -> [X, Y, Z] with spans; None when there is no `=`.
    Prose before the first expression and after the last one is ignored, so
    any wording around the chain reads ("Let's calculate", "Then, ...")."""
    norm = text.translate(_TRANSLATE)  # same length: spans index `text` too
    cuts = [i for i, c in enumerate(norm) if c == "="]
    if not cuts:
        return None
    bounds = [-1] + cuts + [len(text)]
    parts = [(bounds[k] + 1, bounds[k + 1]) for k in range(len(bounds) - 1)]
    elems: list[_Elem] = []
    # First part: the longest suffix that is an expression.
    s0, e0 = _strip_span(text, *parts[0])
    first: _Elem | None = None
    for i in range(max(s0, e0 - _SCAN), e0):
        c = norm[i]
        if not (c in "(-+" or c.isdigit() or c.isupper()) or (i > 0 and (norm[i - 1].isalnum() or norm[i - 1] == "_")):
            continue
        node = parse_expression(norm[i:e0])
        if node is not None:
            first = (node, i, e0)
            break
    if first is None:
        return _Err(_short(text[s0:e0]) or _short(text), FORM)
    elems.append(first)
    for s, e in parts[1:-1]:
        s, e = _strip_span(text, s, e)
        node = parse_expression(norm[s:e])
        if node is None:
            return _Err(text[s:e] or _short(text), FORM)
        elems.append((node, s, e))
    # Last part: the longest prefix that is an expression (a final period or
    # trailing words are not part of it).
    s, e = _strip_span(text, *parts[-1])
    last: _Elem | None = None
    for j in range(min(e, s + _SCAN), s, -1):
        if norm[j - 1].isspace() or norm[j - 1] in ".,;:":
            continue
        node = parse_expression(norm[s:j])
        if node is not None:
            last = (node, s, j)
            break
    if last is None:
        return _Err(_short(text[s:e]) or _short(text), FORM)
    elems.append(last)
    return elems


def _leaf_diffs(a: Node, b: Node, path: tuple[int, ...] = ()) -> list[tuple[int, ...]] | None:
    """Paths where two same-shaped trees hold different numbers (None if the shapes differ)."""
    if isinstance(a, Num) and isinstance(b, Num):
        return [] if a.value == b.value else [path]
    if isinstance(a, Var) and isinstance(b, Var):
        return [] if a.name == b.name else None
    if isinstance(a, Group) and isinstance(b, Group) and a.ops == b.ops and len(a.items) == len(b.items):
        out: list[tuple[int, ...]] = []
        for j, (x, y) in enumerate(zip(a.items, b.items)):
            d = _leaf_diffs(x, y, path + (j,))
            if d is None:
                return None
            out += d
        return out
    return None


def _reductions(node: Node, path: tuple[int, ...] = ()) -> Iterator[tuple[Node, tuple[int, ...], str]]:
    """Every tree one valid operation away from `node`, the path of the number
    it produced, and the operation written out (`-3 + 10 = 7`)."""
    if not isinstance(node, Group):
        return
    for i in _valid_ops(node):
        new, (a, b, r, op) = _reduce_at(node, i)
        hole = path if isinstance(new, Num) else path + (i,)
        yield new, hole, f"{a} {op} {b} = {r}"
    for j, item in enumerate(node.items):
        for sub, hole, why in _reductions(item, path + (j,)):
            yield Group(node.items[:j] + (sub,) + node.items[j + 1 :], node.ops), hole, why


def _var_slip(x: Node, y: Node, env: dict[str, int]) -> str | None:
    """`A = 7` when `y` is `x` with a wrong number put in for A."""
    if isinstance(x, Var) and isinstance(y, Num):
        v = env.get(x.name)
        return f"{x.name} = {v}" if v is not None and v != y.value else None
    if isinstance(x, Group) and isinstance(y, Group) and x.ops == y.ops and len(x.items) == len(y.items):
        for a, b in zip(x.items, y.items):
            r = _var_slip(a, b, env)
            if r:
                return r
    return None


def _link_error(x: Node, y: Node, env: dict[str, int], vx: int, vy: int) -> str | None:
    """Why the link `x = y` is wrong (the smallest true statement that shows
    it), or None. Besides a changed value, a link is wrong when it writes a
    wrong number for a variable or a wrong result for the one operation it
    did, even where the value happens to survive (a factor 0 hides both)."""
    slip = _var_slip(x, y, env)
    if slip:
        return slip
    xs = _substitute(x, {k: Num(v) for k, v in env.items()})
    try:
        reductions = list(_reductions(xs))
    except _ParseError:
        reductions = []
    if all(reduced != y for reduced, _, _ in reductions):
        for reduced, hole, why in reductions:
            if _leaf_diffs(reduced, y) == [hole]:
                return why
        diffs = _leaf_diffs(xs, y)
        if diffs:
            want, got = _at(xs, diffs[0]), _at(y, diffs[0])
            return f"{render(got)} should be {render(want)}"
    if vx != vy:
        return f"{_bare(x)} = {vx}"
    return None


def _at(node: Node, path: tuple[int, ...]) -> Node:
    for j in path:
        assert isinstance(node, Group)
        node = node.items[j]
    return node


@dataclass
class _State:
    """What the steps so far have established."""

    a: _Analysis
    pattern: Node | None = None
    defs: dict[str, Node] | None = None
    values: dict[str, int] = field(default_factory=dict)
    root_value: int | None = None

    def feed(self, text: str) -> _Err | None:
        """Check one step's text and, when it is right, record what it did."""
        dec = _parse_decomposition(text)
        if dec is not None:
            return self._decomposition(text, dec)
        chain = _parse_chain(text)
        if chain is None:
            return _Err(_short(text), FORM)
        if isinstance(chain, _Err):
            return chain
        return self._calculation(text, chain)

    def _decomposition(self, text: str, dec: _Decomposition) -> _Err | None:
        if dec.pattern is None:
            return _Err(_short(text), FORM)
        pat_text = text[dec.pattern[0] : dec.pattern[1]]
        pattern = parse_expression(pat_text)
        if pattern is None:
            return _Err(pat_text, FORM)
        defs: list[tuple[str, Node, str]] = []
        for name, ns, ds, de in dec.defs:
            node = parse_expression(text[ds:de])
            if node is None:
                return _Err(text[ns:de], FORM)
            defs.append((name, node, text[ns:de]))
        mapping: dict[str, Node] = {}
        if not _align(pattern, self.a.root, mapping):
            return _Err(pat_text, f'the equation has the form "{render(self.a.pattern)}"')
        for name, node, seg in defs:
            if name not in mapping:
                return _Err(seg, f'{name} does not appear in "{pat_text}"')
            if node != mapping[name]:
                return _Err(seg, f"{name} stands for {render(mapping[name])} in the equation")
        named = {name for name, _, _ in defs}
        missing = [v for v in _vars(pattern) if v not in named]
        if missing:
            return _Err(pat_text, f"{missing[0]} is not defined")
        self.pattern, self.defs, self.values = pattern, mapping, {}
        return None

    def _calculation(self, text: str, elems: list[_Elem]) -> _Err | None:
        head, hs, he = elems[0]
        if isinstance(head, Var):
            # `A = (def) = ... = number`
            name = head.name
            if self.defs is None or name not in self.defs:
                return _Err(text[hs:he], f"{name} is not defined in an earlier step")
            e1, _, e1e = elems[1]
            if e1 != self.defs[name]:
                return _Err(text[hs:e1e], f"{name} was defined as {render(self.defs[name])}")
            err = self._links(text, elems[1:])
            if err:
                return err
            last, ls, le = elems[-1]
            if not isinstance(last, Num):
                return _Err(text[ls:le], f"{name} is not yet calculated to a single number")
            self.values[name] = last.value
            if isinstance(self.pattern, Var) and self.pattern.name == name:
                self.root_value = last.value
            return None
        # An expression: the final equation, or (a part of) the problem itself.
        names = _vars(head)
        for v in names:
            if self.defs is None or v not in self.defs:
                return _Err(text[hs:he], f"{v} is not defined in an earlier step")
        for v in names:
            if v not in self.values:
                return _Err(text[hs:he], f"{v} has not been calculated yet")
        full = _substitute(head, self.defs or {})
        if full not in self.a.subtrees:
            if names and self.pattern is not None:
                reason = f"the final equation is {render(self.pattern)}"
            else:
                reason = f"{render(head)} is not part of the equation {render(self.a.root)}"
            return _Err(text[hs:he], reason)
        err = self._links(text, elems)
        if err:
            return err
        last, ls, le = elems[-1]
        if not isinstance(last, Num):
            return _Err(text[ls:le], f"{_bare(head)} is not yet calculated to a single number")
        if full == self.a.root:
            self.root_value = last.value
        return None

    def _links(self, text: str, elems: list[_Elem]) -> _Err | None:
        for (x, xs, _), (y, _, ye) in zip(elems, elems[1:]):
            seg = text[xs:ye]
            vx, mx = _try_value(x, self.values)
            vy, my = _try_value(y, self.values)
            if mx or my:
                return _Err(seg, f"{mx or my} has not been calculated yet")
            if vx is None or vy is None:
                return _Err(seg, FORM)
            why = _link_error(x, y, self.values, vx, vy)
            if why:
                return _Err(seg, why)
        return None


def _align(p: Node, r: Node, mapping: dict[str, Node]) -> bool:
    """Does pattern `p` (with variables) match the problem's tree `r`, each
    variable standing for one innermost group? Fills `mapping`."""
    if isinstance(p, Var):
        if not _is_innermost(r):
            return False
        if p.name in mapping:
            return mapping[p.name] == r
        mapping[p.name] = r
        return True
    if isinstance(p, Num):
        return isinstance(r, Num) and r.value == p.value
    if not isinstance(r, Group) or r.ops != p.ops or len(r.items) != len(p.items) or _is_innermost(p):
        return False
    return all(_align(a, b, mapping) for a, b in zip(p.items, r.items))


_INT_TEXT_RE = re.compile(r"^[+-]?[0-9]+$")
_THOUSANDS_RE = re.compile(r"^[+-]?[0-9]{1,3}(?:,[0-9]{3})+$")
_ANSWER_IS_RE = re.compile(r"answer is", re.IGNORECASE)
_NUM_TEXT_RE = re.compile(r"(?<![\w)])-?[0-9]+")


def _normalise(raw: str) -> str | None:
    s = raw.translate(_TRANSLATE).strip().strip("*`$ ").rstrip(".").strip()
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    if not _INT_TEXT_RE.match(s) or len(s) > 1000:
        return None
    return str(int(s))


# -------------------------------------------------------------- task ---


class ArithmeticTask:
    """Multistep arithmetic in BIG-bench's form, e.g. ((-3 + 5 * 2) - (7 - -1)) =."""

    name = "arithmetic"
    scripted = True

    # ---- levels and generation

    def levels(self, preset: str, subset: str) -> list[str]:
        if preset not in _LEVELS:
            raise TripostError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        if subset not in SUBSETS:
            raise TripostError(f"unknown subset {subset!r}; choose from {', '.join(SUBSETS)}")
        return list(_LEVELS[preset][subset])

    def generate(self, rng: random.Random, level: str) -> Problem:
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

        root = build(branching)
        return self._problem(render(root) + " =", render(root), difficulty=level)

    def _problem(self, question: str, expression: str, difficulty: str | None = None, **kw: Any) -> Problem:
        a = _analyse(expression)
        steps = _continue(a, _State(a))
        rationale = render_rationale(steps, a.answer)
        if len(rationale) > MAX_RATIONALE_CHARS:
            raise TripostError(
                f"arithmetic: the step-by-step rationale of {_clip(question)!r} is {len(rationale):,} characters long, "
                f"more than the {MAX_RATIONALE_CHARS:,} accepted (its numbers are too long)"
            )
        # The checker reads numbers of up to _MAX_DIGITS digits: a problem whose
        # own rationale it could not read would flag every correct attempt.
        longest = max((len(m) for m in _DIGITS_RE.findall(rationale)), default=0)
        if longest > _MAX_DIGITS:
            raise TripostError(
                f"arithmetic: {_clip(question)!r} reaches a number of {longest} digits on the way; "
                f"the step checker reads at most {_MAX_DIGITS}"
            )
        return Problem(
            id=kw.get("id") or "",
            family=self.name,
            question=question,
            answer=a.answer,
            rationale=rationale,
            difficulty=difficulty or a.label,
            subset=kw.get("subset", "seen"),
            split=kw.get("split", "train"),
            options=kw.get("options", ()),
            meta={
                "expression": render(a.root),
                "value": a.value,
                "length": a.length,
                "shape": a.shape,
                "pattern": render(a.pattern),
                "variables": {name: render(g) for name, g in a.defs},
            },
        )

    def from_record(self, record: dict[str, Any]) -> Problem:
        if not isinstance(record, dict):
            raise TripostError("an arithmetic record must be a JSON object with 'question' and 'answer'")
        check_record(record)  # loosely read fields' types, and sizes
        question, answer = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise TripostError("field 'question' must be a non-empty string such as '((-3 + 5 * 2) - (7 - -1)) ='")
        if isinstance(answer, bool) or not isinstance(answer, (str, int)) or (isinstance(answer, str) and not answer.strip()):
            raise TripostError("field 'answer' must be an integer or a string holding one")
        gold = self.parse_answer(str(answer))
        if gold is None:
            raise TripostError(f"field 'answer' must be an integer, got {_clip(str(answer))!r}")
        difficulty = record.get("difficulty")
        options = record.get("options") or ()
        if not isinstance(options, (list, tuple)):
            raise TripostError("field 'options' must be a list")
        subset = record.get("subset") if record.get("subset") in SUBSETS else "seen"
        split = record.get("split") if record.get("split") in SPLITS else "train"
        q = question.strip()
        # The record's own `rationale` is not used: the gold rationale must be
        # the one this checker and the scripted teacher speak.
        p = self._problem(
            q,
            _expression_of_question(q),
            difficulty=str(difficulty) if difficulty not in (None, "") else None,
            id=str(record.get("id") or problem_id(self.name, q)),
            options=tuple(str(o) for o in options),
            subset=subset,
            split=split,
        )
        if p.answer != gold:
            raise TripostError(f"the answer {_clip(str(answer))!r} does not match the question {_clip(q)!r}, which equals {p.answer}")
        # Generated problems are readable by construction; an external one may
        # not be (a group longer than the checker looks back for, _SCAN): the
        # checker would then flag every correct attempt, the gold one included.
        if not self.check_steps(p, p.rationale).all_correct:
            raise TripostError(
                f"arithmetic: {_clip(q)!r} is too long for the step checker to read its step-by-step rationale "
                f"(keep a group under {_SCAN} characters)"
            )
        return p

    # ---- answers

    def parse_answer(self, text: str) -> str | None:
        if text is None:
            return None
        text = str(text)
        parsed = parse_rationale(text)
        if parsed.final is not None:
            raw = parse_final_answer(parsed.final)
        elif _ANSWER_IS_RE.search(text):
            # No (Final response) line: the last "answer is" sentence counts,
            # up to the end of its line (a rationale may state it twice).
            last = list(_ANSWER_IS_RE.finditer(text))[-1]
            raw = parse_final_answer("the " + text[last.start():].split("\n", 1)[0])
        else:
            raw = text
        return _normalise(raw) if raw else None

    def check_answer(self, problem: Problem, answer: str | None) -> bool:
        if answer is None:
            return False
        got = self.parse_answer(answer)
        return got is not None and got == _normalise(str(problem.answer))

    # ---- steps

    def _analysis(self, problem: Problem) -> _Analysis:
        expr = problem.meta.get("expression") if isinstance(problem.meta, dict) else None
        if isinstance(expr, str) and expr:
            return _analyse(expr)
        return _analyse(_expression_of_question(problem.question))

    def check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        a = self._analysis(problem)  # a bad problem is the caller's error: let it raise
        text = rationale if isinstance(rationale, str) else str(rationale)
        try:
            if len(text) > MAX_RATIONALE_CHARS:
                # A link `X = Y` is checked against every operation X allows,
                # so the work grows with the square of a link's length (one of
                # 24,000 characters took 2.5 s): text longer than any record
                # may hold is flagged, not read. Model text is far shorter.
                answer = self.parse_answer(text)
                reason = f"the rationale is {len(text):,} characters long, more than the {MAX_RATIONALE_CHARS:,} checked"
                return StepCheck(answer == a.answer, 1, "", reason, parse_rationale(text).n_steps, answer)
            return self._check(a, problem, text)
        except Exception:  # noqa: BLE001 - model text must never crash a run; report, don't raise
            return StepCheck(correct=False, first_error_step=1, segment="", reason=FORM)

    def _check(self, a: _Analysis, problem: Problem, text: str) -> StepCheck:
        parsed = parse_rationale(text)
        n = parsed.n_steps
        raw = parse_final_answer(parsed.final) if parsed.final is not None else None
        answer = _normalise(raw) if raw else None
        correct = answer is not None and answer == a.answer

        def verdict(step: int | None, segment: str = "", reason: str = "") -> StepCheck:
            return StepCheck(correct, step, segment, reason, n, answer)

        state = _State(a)
        for i, step in enumerate(parsed.steps):
            if parsed.numbers[i] != i + 1:
                return verdict(i + 1, _short(step), f"this step is numbered ({parsed.numbers[i]}) but should be ({i + 1})")
            err = state.feed(step)
            if err is not None:
                return verdict(i + 1, err.segment, err.reason)
        if parsed.final is None:
            return verdict(n + 1, "", "the final response is missing")
        if raw is None or answer is None:
            return verdict(n + 1, _short(parsed.final), "the final response does not give a whole number as the answer")
        if not correct:
            why = f"the steps above give {a.answer}" if state.root_value is not None else f"the equation equals {a.answer}"
            return verdict(n + 1, _short(raw), why)
        if state.root_value is None:
            return verdict(n + 1, _short(raw), "the steps above have not calculated the whole equation yet")
        return verdict(None)

    def continue_rationale(self, problem: Problem, kept_steps: list[str]) -> tuple[list[str], str]:
        a = self._analysis(problem)
        state = _State(a)
        for step in kept_steps:
            if state.feed(step) is not None:
                break  # kept steps are the correct ones; stop at anything else
        return _continue(a, state), a.answer

    def corrupt(self, problem: Problem, step: int, rng: random.Random) -> str:
        parsed = parse_rationale(problem.rationale)
        steps, answer, n = list(parsed.steps), parsed.answer or problem.answer, parsed.n_steps
        if not 1 <= step <= n + 1:
            raise TripostError(f"arithmetic: step {step} is out of range 1..{n + 1}")
        deltas = [-3, -2, -1, 1, 2, 3]
        if step == n + 1:
            return render_rationale(steps, str(int(answer) + rng.choice(deltas)))
        text = steps[step - 1]
        where = _WHERE_RE.search(text)
        start = where.end() if where else text.find("=") + 1
        spans = [m for m in _NUM_TEXT_RE.finditer(text) if m.start() >= start]
        if not spans:
            raise TripostError(f"arithmetic: step {step} of the gold rationale has no number to alter")
        candidate = problem.rationale
        # A random number first (varied mistakes); the chain's last number (or
        # the last definition's) is always caught, so it is the fallback.
        for attempt in range(6):
            m = rng.choice(spans) if attempt < 5 else spans[-1]
            new = text[: m.start()] + str(int(m.group()) + rng.choice(deltas)) + text[m.end() :]
            candidate = render_rationale(steps[: step - 1] + [new] + steps[step:], answer)
            if self.check_steps(problem, candidate).first_error_step == step:
                return candidate
        return candidate


def _continue(a: _Analysis, state: _State) -> list[str]:
    """Correct steps from `state` to the value of the whole equation, reusing
    what is done (names, order, computed values) and writing only the rest."""
    if state.root_value is not None:
        return []
    steps: list[str] = []
    if state.pattern is None or state.defs is None:
        if _is_innermost(a.root):
            return [_calc_text(None, a.root)]
        steps.append(_decomposition_text(a.pattern, a.defs))
        pattern, defs, values = a.pattern, dict(a.defs), {}
    else:
        pattern, defs, values = state.pattern, state.defs, dict(state.values)
    for name in _vars(pattern):
        if name not in values:
            steps.append(_calc_text(name, defs[name]))
            values[name] = _value(defs[name])
    if not isinstance(pattern, Var):  # a lone variable: computing it was the whole equation
        steps.append(_final_text(pattern, values))
    return steps


__all__ = ["ArithmeticTask", "parse_expression", "render"]
