"""The arithmetic step checker: reads any wording, checks meaning.

Every expression of a `X = Y = Z` chain is parsed and each link must keep
the value and do one valid operation; the naming step must name exactly the
problem's innermost groups; a calculation starts from its variable's
definition; variables may be computed in any order and under any names; the
final equation is the problem's with computed values put in. `State` is
what the steps so far established; the scripted teacher continues from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

from tripost.format import parse_final_answer, parse_rationale
from tripost.tasks.arithmetic.analysis import Analysis
from tripost.tasks.arithmetic.expr import (
    TRANSLATE,
    Group,
    Node,
    Num,
    ParseError,
    Var,
    bare,
    is_innermost,
    parse_expression,
    reduce_at,
    render,
    substitute,
    try_value,
    valid_ops,
    variables,
)
from tripost.tasks.base import StepCheck
from tripost.tasks.family import FORM_REASON, StepError, first_wrong_step

SCAN = 400  # how far back/forward to look for an expression at a chain's ends


def _short(text: str, n: int = 60) -> str:
    """A prefix of `text` (so still a verbatim substring) short enough to quote."""
    return text.strip()[:n].rstrip()


def _strip_span(text: str, s: int, e: int, chars: str = " \t") -> tuple[int, int]:
    while s < e and text[s] in chars:
        s += 1
    while e > s and text[e - 1] in chars:
        e -= 1
    return s, e


WHERE_RE = re.compile(r"\bwhere\b", re.IGNORECASE)
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
    where = WHERE_RE.search(text)
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


def _first_expression(norm: str, spans: Iterator[tuple[int, int]]) -> _Elem | None:
    """The first of `spans` (start, end) whose text is an expression."""
    for s, e in spans:
        node = parse_expression(norm[s:e])
        if node is not None:
            return node, s, e
    return None


def _parse_chain(text: str) -> list[_Elem] | StepError | None:
    """`prose X = Y = Z.` -> [X, Y, Z] with spans; None when there is no `=`.
    Prose before the first expression and after the last one is ignored, so
    any wording around the chain reads ("Let's calculate", "Then, ...")."""
    norm = text.translate(TRANSLATE)  # same length: spans index `text` too
    cuts = [i for i, c in enumerate(norm) if c == "="]
    if not cuts:
        return None
    bounds = [-1] + cuts + [len(text)]
    parts = [(bounds[k] + 1, bounds[k + 1]) for k in range(len(bounds) - 1)]
    # First part: the longest suffix that is an expression, starting where
    # an expression can (not inside a word).
    s0, e0 = _strip_span(text, *parts[0])
    starts = (
        i for i in range(max(s0, e0 - SCAN), e0)
        if (norm[i] in "(-+" or norm[i].isdigit() or norm[i].isupper()) and not (i > 0 and (norm[i - 1].isalnum() or norm[i - 1] == "_"))
    )
    first = _first_expression(norm, ((i, e0) for i in starts))
    if first is None:
        return StepError(_short(text[s0:e0]) or _short(text), FORM_REASON)
    elems = [first]
    for s, e in parts[1:-1]:
        s, e = _strip_span(text, s, e)
        node = parse_expression(norm[s:e])
        if node is None:
            return StepError(text[s:e] or _short(text), FORM_REASON)
        elems.append((node, s, e))
    # Last part: the longest prefix that is an expression (a final period or
    # trailing words are not part of it).
    s, e = _strip_span(text, *parts[-1])
    ends = (j for j in range(min(e, s + SCAN), s, -1) if not (norm[j - 1].isspace() or norm[j - 1] in ".,;:"))
    last = _first_expression(norm, ((s, j) for j in ends))
    if last is None:
        return StepError(_short(text[s:e]) or _short(text), FORM_REASON)
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
    for i in valid_ops(node):
        new, (a, b, r, op) = reduce_at(node, i)
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
    xs = substitute(x, {k: Num(v) for k, v in env.items()})
    try:
        reductions = list(_reductions(xs))
    except ParseError:
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
        return f"{bare(x)} = {vx}"
    return None


def _at(node: Node, path: tuple[int, ...]) -> Node:
    for j in path:
        assert isinstance(node, Group)
        node = node.items[j]
    return node


@dataclass
class State:
    """What the steps so far have established."""

    a: Analysis
    pattern: Node | None = None
    defs: dict[str, Node] | None = None
    values: dict[str, int] = field(default_factory=dict)
    root_value: int | None = None

    def feed(self, text: str) -> StepError | None:
        """Check one step's text and, when it is right, record what it did."""
        dec = _parse_decomposition(text)
        if dec is not None:
            return self._decomposition(text, dec)
        chain = _parse_chain(text)
        if chain is None:
            return StepError(_short(text), FORM_REASON)
        if isinstance(chain, StepError):
            return chain
        return self._calculation(text, chain)

    def _decomposition(self, text: str, dec: _Decomposition) -> StepError | None:
        if dec.pattern is None:
            return StepError(_short(text), FORM_REASON)
        pat_text = text[dec.pattern[0] : dec.pattern[1]]
        pattern = parse_expression(pat_text)
        if pattern is None:
            return StepError(pat_text, FORM_REASON)
        defs: list[tuple[str, Node, str]] = []
        for name, ns, ds, de in dec.defs:
            node = parse_expression(text[ds:de])
            if node is None:
                return StepError(text[ns:de], FORM_REASON)
            defs.append((name, node, text[ns:de]))
        mapping: dict[str, Node] = {}
        if not _align(pattern, self.a.root, mapping):
            return StepError(pat_text, f'the equation has the form "{render(self.a.pattern)}"')
        for name, node, seg in defs:
            if name not in mapping:
                return StepError(seg, f'{name} does not appear in "{pat_text}"')
            if node != mapping[name]:
                return StepError(seg, f"{name} stands for {render(mapping[name])} in the equation")
        named = {name for name, _, _ in defs}
        missing = [v for v in variables(pattern) if v not in named]
        if missing:
            return StepError(pat_text, f"{missing[0]} is not defined")
        self.pattern, self.defs, self.values = pattern, mapping, {}
        return None

    def _calculation(self, text: str, elems: list[_Elem]) -> StepError | None:
        head, hs, he = elems[0]
        if isinstance(head, Var):
            # `A = (def) = ... = number`
            name = head.name
            if self.defs is None or name not in self.defs:
                return StepError(text[hs:he], f"{name} is not defined in an earlier step")
            e1, _, e1e = elems[1]
            if e1 != self.defs[name]:
                return StepError(text[hs:e1e], f"{name} was defined as {render(self.defs[name])}")
            err = self._links(text, elems[1:])
            if err:
                return err
            last, ls, le = elems[-1]
            if not isinstance(last, Num):
                return StepError(text[ls:le], f"{name} is not yet calculated to a single number")
            self.values[name] = last.value
            if isinstance(self.pattern, Var) and self.pattern.name == name:
                self.root_value = last.value
            return None
        # An expression: the final equation, or (a part of) the problem itself.
        names = variables(head)
        for v in names:
            if self.defs is None or v not in self.defs:
                return StepError(text[hs:he], f"{v} is not defined in an earlier step")
        for v in names:
            if v not in self.values:
                return StepError(text[hs:he], f"{v} has not been calculated yet")
        full = substitute(head, self.defs or {})
        if full not in self.a.subtrees:
            if names and self.pattern is not None:
                reason = f"the final equation is {render(self.pattern)}"
            else:
                reason = f"{render(head)} is not part of the equation {render(self.a.root)}"
            return StepError(text[hs:he], reason)
        err = self._links(text, elems)
        if err:
            return err
        last, ls, le = elems[-1]
        if not isinstance(last, Num):
            return StepError(text[ls:le], f"{bare(head)} is not yet calculated to a single number")
        if full == self.a.root:
            self.root_value = last.value
        return None

    def _links(self, text: str, elems: list[_Elem]) -> StepError | None:
        for (x, xs, _), (y, _, ye) in zip(elems, elems[1:]):
            seg = text[xs:ye]
            vx, mx = try_value(x, self.values)
            vy, my = try_value(y, self.values)
            if mx or my:
                return StepError(seg, f"{mx or my} has not been calculated yet")
            if vx is None or vy is None:
                return StepError(seg, FORM_REASON)
            why = _link_error(x, y, self.values, vx, vy)
            if why:
                return StepError(seg, why)
        return None


def _align(p: Node, r: Node, mapping: dict[str, Node]) -> bool:
    """Does pattern `p` (with variables) match the problem's tree `r`, each
    variable standing for one innermost group? Fills `mapping`."""
    if isinstance(p, Var):
        if not is_innermost(r):
            return False
        if p.name in mapping:
            return mapping[p.name] == r
        mapping[p.name] = r
        return True
    if isinstance(p, Num):
        return isinstance(r, Num) and r.value == p.value
    if not isinstance(r, Group) or r.ops != p.ops or len(r.items) != len(p.items) or is_innermost(p):
        return False
    return all(_align(a, b, mapping) for a, b in zip(p.items, r.items))


_INT_TEXT_RE = re.compile(r"^[+-]?[0-9]+$")
_THOUSANDS_RE = re.compile(r"^[+-]?[0-9]{1,3}(?:,[0-9]{3})+$")
_ANSWER_IS_RE = re.compile(r"answer is", re.IGNORECASE)
NUM_TEXT_RE = re.compile(r"(?<![\w)])-?[0-9]+")


def normalise_answer(raw: str) -> str | None:
    s = raw.translate(TRANSLATE).strip().strip("*`$ ").rstrip(".").strip()
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    if not _INT_TEXT_RE.match(s) or len(s) > 1000:
        return None
    return str(int(s))


def read_answer(text: str) -> str | None:
    """The whole-number answer of a rationale or a bare answer, normalised."""
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
    return normalise_answer(raw) if raw else None


def check_text(a: Analysis, text: str) -> StepCheck:
    """The first wrong step of `text` for the problem `a` (may raise on odd
    text: the family's crash guard catches it)."""
    parsed = parse_rationale(text)
    n = parsed.n_steps
    raw = parse_final_answer(parsed.final) if parsed.final is not None else None
    answer = normalise_answer(raw) if raw else None
    correct = answer is not None and answer == a.answer

    def verdict(step: int | None, segment: str = "", reason: str = "") -> StepCheck:
        return StepCheck(correct, step, segment, reason, n, answer)

    state = State(a)
    wrong = first_wrong_step(parsed, state.feed, _short)
    if wrong is not None:
        return verdict(wrong[0], wrong[1].segment, wrong[1].reason)
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
