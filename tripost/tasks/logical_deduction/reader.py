"""Reading statements and claims about one puzzle's objects ("the green book
is second from the left", "Amy finished above Eli", "X is not the oldest"),
in BIG-bench's wordings and the usual others."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from tripost.tasks.logical_deduction.scenes import ORD_VALUE, SCENES

_ORD_RE = r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|1st|2nd|3rd|10th|[4-9]th)"
_DIR_RE = r"(?:left|right|oldest|newest|youngest|cheapest|least[- ]expensive|most[- ]expensive)"
_POS_RE = (
    rf"(?:the\s+)?(?:{_ORD_RE}[- ]to[- ]last"
    rf"|{_ORD_RE}(?:\s+from\s+the\s+|[- ]|\s+){_DIR_RE}"
    r"|leftmost|rightmost|oldest|newest|youngest|cheapest|least[- ]expensive|most[- ]expensive|last|middle"
    r"|position\s+\d{1,2}"
    rf"|{_ORD_RE}(?:\s+(?:position|place|one))?)"
)
START_DIRS = {"left", "leftmost", "oldest", "first", "cheapest", "least expensive", "top"}
END_DIRS = {"right", "rightmost", "newest", "youngest", "last", "most expensive", "bottom"}
_VERB_RE = r"(?:is|are|was|were|finished|finishes|must\s+be|has\s+to\s+be|have\s+to\s+be|should\s+be|comes|ranks|sits)"
_REL_BEFORE = ("to the left of", "left of", "older than", "above", "ahead of", "less expensive than", "cheaper than")
_REL_AFTER = ("to the right of", "right of", "newer than", "younger than", "below", "behind", "more expensive than", "pricier than")
_REL_RE = "(?:" + "|".join(r.replace(" ", r"\s+") for r in sorted(_REL_BEFORE + _REL_AFTER, key=len, reverse=True)) + ")"


def _pos_value(phrase: str, n: int) -> int | None:
    """Position (1-based, from the start) a phrase names, or None. Not range-checked."""
    s = " ".join(phrase.lower().replace("-", " ").split())
    s = re.sub(r"^(?:in |at )?(?:the )?", "", s)
    m = re.fullmatch(rf"({_ORD_RE}) to last", s)
    if m:
        return n + 1 - ORD_VALUE[m.group(1)]
    m = re.fullmatch(rf"({_ORD_RE}) (?:from the )?(left|right|oldest|newest|youngest|cheapest|least expensive|most expensive)", s)
    if m:
        k = ORD_VALUE[m.group(1)]
        return k if m.group(2) in START_DIRS else n + 1 - k
    if s in START_DIRS:
        return 1
    if s in END_DIRS:
        return n
    if s == "middle":
        return (n + 1) // 2 if n % 2 else None
    m = re.fullmatch(r"position (\d{1,2})", s)
    if m:
        return int(m.group(1))
    m = re.fullmatch(rf"({_ORD_RE})(?: position| place| one)?", s)
    if m:
        return ORD_VALUE[m.group(1)]
    return None


@dataclass(frozen=True)
class Claim:
    """A claim about the order: `at` (object a at position b), `notat`, or
    `before` (object a nearer the start than object b). Spans index the step."""

    kind: str
    a: int
    b: int | None  # None: a position phrase that names no position
    start: int
    end: int

    @property
    def key(self) -> tuple[str, int, int | None]:
        return (self.kind, self.a, self.b)


@dataclass(frozen=True)
class _Grammar:
    objects: tuple[str, ...]
    claim_at: re.Pattern[str]
    claim_rel: re.Pattern[str]
    stmt_at: re.Pattern[str]
    stmt_rel: re.Pattern[str]
    lookup: dict[str, int]


_POOL_NAMES = tuple(sorted({name for scene in SCENES.values() for name in scene.pool}))


def _grammar(objects: tuple[str, ...]) -> _Grammar:
    """The grammar for a puzzle's objects. Compiling these patterns is slow
    (milliseconds), so generated puzzles share one grammar over every name in
    the scene pools; a name outside them (an external record) gets its own."""
    lower = {" ".join(o.lower().split()) for o in objects}
    if lower <= {p.lower() for p in _POOL_NAMES}:
        base = _compiled(_POOL_NAMES)
        return _Grammar(objects, base.claim_at, base.claim_rel, base.stmt_at, base.stmt_rel,
                        {" ".join(o.lower().split()): i for i, o in enumerate(objects)})
    return _compiled(objects)


@lru_cache(maxsize=64)
def _compiled(objects: tuple[str, ...]) -> _Grammar:
    obj = "|".join(re.escape(o).replace(r"\ ", r"\s+") for o in sorted(objects, key=len, reverse=True))
    subject = rf"(?:the\s+)?(?P<a>{obj})"
    flags = re.IGNORECASE
    return _Grammar(
        objects=objects,
        claim_at=re.compile(rf"(?<![\w-]){subject}\s+{_VERB_RE}(?P<neg>\s+not)?\s+(?:in\s+|at\s+)?(?P<pos>{_POS_RE})(?![\w-])", flags),
        claim_rel=re.compile(rf"(?<![\w-]){subject}\s+{_VERB_RE}(?P<neg>\s+not)?\s+(?P<rel>{_REL_RE})\s+(?:the\s+)?(?P<b>{obj})(?![\w-])", flags),
        stmt_at=re.compile(rf"{subject}\s+(?:is|are|was|were|finished)\s+(?:in\s+)?(?P<pos>{_POS_RE})", flags),
        stmt_rel=re.compile(rf"{subject}\s+(?:is|are|was|were|finished)\s+(?P<rel>{_REL_RE})\s+(?:the\s+)?(?P<b>{obj})", flags),
        lookup={" ".join(o.lower().split()): i for i, o in enumerate(objects)},
    )


def _rel_is_before(rel: str) -> bool:
    return " ".join(rel.lower().split()) in _REL_BEFORE


class Reader:
    """Parses statements and claims about one puzzle's objects."""

    def __init__(self, objects: tuple[str, ...], n: int):
        self.g = _grammar(objects)
        self.n = n

    def index(self, name: str) -> int | None:
        return self.g.lookup.get(" ".join(name.lower().split()))

    def statement(self, sentence: str) -> tuple[str, int, int | None] | None:
        """A whole sentence as a constraint key, e.g. ("at", 2, 3); None when
        it is not a statement about the order."""
        s = sentence.strip().strip("\"“”").strip().rstrip(".").strip()
        m = self.g.stmt_rel.fullmatch(s)
        if m:
            a, b = self.index(m.group("a")), self.index(m.group("b"))
            if a is None or b is None or a == b:
                return None
            return ("before", a, b) if _rel_is_before(m.group("rel")) else ("before", b, a)
        m = self.g.stmt_at.fullmatch(s)
        if m:
            a = self.index(m.group("a"))
            return None if a is None else ("at", a, _pos_value(m.group("pos"), self.n))
        return None

    def claims(self, text: str) -> list[Claim]:
        out: list[Claim] = []
        for m in self.g.claim_rel.finditer(text):
            a, b = self.index(m.group("a")), self.index(m.group("b"))
            if a is None or b is None or a == b:
                continue
            first = _rel_is_before(m.group("rel")) != bool(m.group("neg"))
            out.append(Claim("before", a, b, m.start(), m.end()) if first else Claim("before", b, a, m.start(), m.end()))
        for m in self.g.claim_at.finditer(text):
            a = self.index(m.group("a"))
            if a is None or any(c.start <= m.start() < c.end for c in out):
                continue
            kind = "notat" if m.group("neg") else "at"
            out.append(Claim(kind, a, _pos_value(m.group("pos"), self.n), m.start(), m.end()))
        return sorted(out, key=lambda c: c.start)
