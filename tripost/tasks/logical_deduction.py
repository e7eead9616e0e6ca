"""Logical deduction: BIG-bench's ordering puzzles over N objects.

    The following paragraphs each describe a set of three objects arranged in a
    fixed order. The statements are logically consistent within each paragraph.
    On a shelf, there are three books: a white book, a green book, and an orange
    book. The green book is to the right of the white book. The orange book is
    the rightmost.
    Options:
    (A) The white book is the leftmost
    ...

TriPosT evaluated on this task with 3 and 5 objects seen and 7 unseen (Yu et
al. 2024, Section 4.1). Difficulty = the number of objects.

Every puzzle has exactly one solution. Orders of N objects are the N!
permutations (5040 for N = 7); a set of orders is a Python int used as a
bitset over them, so "the clues allow exactly one order" and "these premises
entail that X is third" are a few big-int ANDs (`_Space`).

The gold rationale is a chain of deductions. Each step quotes the clues it
uses and claims positions that those clues and the claims of earlier steps
force; then the full order, then the true option:

    (1) "The orange book is the rightmost", so the orange book is third from the left.
    (2) "The green book is to the right of the white book", so the white book is first from the left and the green book is second from the left.
    (3) The order from left to right is: white book, green book, orange book.
    (4) Option (A) says the white book is the leftmost, which is true.
    (Final response) So the answer is (A).

The step checker reads any text the same way: a quoted sentence must be one
of the puzzle's statements (in any equivalent wording); every unquoted claim
("X is second from the left", "X is not the oldest", "X is to the left of Y")
must be true and must follow from the quoted statements, the restated clues
and what earlier steps claimed. Claims are facts from then on; quotes are
citations for their own step only. So any valid order of deductions passes,
and a guess that happens to be right is still flagged as not following.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from tripost.errors import TripostError
from tripost.format import final_line, parse_final_answer, parse_rationale, render_rationale
from tripost.tasks.base import PRESETS, SUBSETS, Problem, StepCheck, problem_id, split_of
from tripost.tasks.external import check_record

_LEVELS = {
    # paper: TriPosT's split (seen 3 and 5 objects, unseen 7).
    "paper": {"seen": ["3", "5"], "unseen": ["7"]},
    # small: for a 135M student, short puzzles and rationales of 3-6 steps.
    "small": {"seen": ["3"], "unseen": ["4"]},
}
_MIN_N, _MAX_N = 3, 7

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NUMBER_WORDS = {3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}
_WORD_NUMBERS = {w: n for n, w in _NUMBER_WORDS.items()}
_ORD = ["", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]
_ORD_VALUE = {w: i for i, w in enumerate(_ORD) if w}
_ORD_VALUE.update({"1st": 1, "2nd": 2, "3rd": 3, "10th": 10})
_ORD_VALUE.update({f"{i}th": i for i in range(4, 10)})

PREAMBLE = (
    "The following paragraphs each describe a set of {n} objects arranged in a fixed order. "
    "The statements are logically consistent within each paragraph."
)
_FORM_REASON = "this step does not follow the expected form"


# ------------------------------------------------------------------ scenes ---


@dataclass(frozen=True)
class _Scene:
    """One of BIG-bench's five settings and its wording. Position 1 is the
    scene's natural start (leftmost, oldest, first, cheapest)."""

    key: str
    noun: str  # plural noun of the intro: "books"
    intro: str  # with {n} and {items}
    pool: tuple[str, ...]
    article: bool  # the intro lists "a white book" (True) or "Amy" / "apples" (False)
    definite: bool  # sentences say "The white book" (True) or "Amy" (False)
    plural: bool  # "The apples are ..."
    start: str  # "The order from START to END is: ..."
    end: str
    before: str  # relation "A <before> B": A nearer the start
    after: str


_SCENES: dict[str, _Scene] = {
    s.key: s
    for s in (
        _Scene(
            "books", "books", "On a shelf, there are {n} books: {items}.",
            tuple(f"{c} book" for c in ("white", "green", "orange", "red", "blue", "black", "brown", "yellow", "gray", "purple")),
            True, True, False, "left", "right", "is to the left of", "is to the right of",
        ),
        _Scene(
            "birds", "birds", "On a branch, there are {n} birds: {items}.",
            ("blue jay", "quail", "falcon", "owl", "raven", "robin", "crow", "hawk", "cardinal", "hummingbird"),
            True, True, False, "left", "right", "is to the left of", "is to the right of",
        ),
        _Scene(
            "vehicles", "vehicles", "In an antique car show, there are {n} vehicles: {items}.",
            ("motorcycle", "bus", "tractor", "station wagon", "convertible", "minivan", "truck", "limousine", "sedan", "hatchback"),
            True, True, False, "oldest", "newest", "is older than", "is newer than",
        ),
        _Scene(
            "golfers", "golfers", "In a golf tournament, there were {n} golfers: {items}.",
            ("Amy", "Eli", "Eve", "Rob", "Ana", "Dan", "Mya", "Joe", "Mel", "Ada"),
            False, False, False, "first", "last", "finished above", "finished below",
        ),
        _Scene(
            "fruits", "fruits", "A fruit stand sells {n} fruits: {items}.",
            ("apples", "mangoes", "oranges", "peaches", "watermelons", "loquats", "kiwis", "pears", "plums", "cantaloupes"),
            False, True, True, "cheapest", "most expensive", "are less expensive than", "are more expensive than",
        ),
    )
}
_NOUN_SCENE = {s.noun: s.key for s in _SCENES.values()}


def _subj(scene: _Scene, name: str, cap: bool = False) -> str:
    if not scene.definite:
        return name
    return f"{'The' if cap else 'the'} {name}"


def _lc(sentence: str) -> str:
    """Lower-case a leading "The" (not a golfer's name)."""
    return "the " + sentence[4:] if sentence.startswith("The ") else sentence


def _be(scene: _Scene) -> str:
    return "are" if scene.plural else "is"


def _pos_phrase(scene: _Scene, k: int, n: int, from_end: bool) -> str:
    """BIG-bench's wording of position k (of n), counted from either end."""
    e = n + 1 - k
    if scene.key in ("books", "birds"):
        if k == 1:
            return "the leftmost"
        if k == n:
            return "the rightmost"
        return f"the {_ORD[e]} from the right" if from_end else f"the {_ORD[k]} from the left"
    if scene.key == "vehicles":
        if k == 1:
            return "the oldest"
        if k == n:
            return "the newest"
        return f"the {_ORD[e]}-newest" if from_end else f"the {_ORD[k]}-oldest"
    if scene.key == "golfers":
        if k == 1:
            return "first"
        if k == n:
            return "last"
        return f"{_ORD[e]}-to-last" if from_end else _ORD[k]
    if k == 1:
        return "the cheapest"
    if k == n:
        return "the most expensive"
    return f"the {_ORD[e]}-most expensive" if from_end else f"the {_ORD[k]}-cheapest"


def _canon(scene: _Scene, k: int) -> str:
    """The rationale's wording of position k: always counted from the start,
    so that it reads straight off the order line."""
    if scene.key in ("books", "birds"):
        return f"{_ORD[k]} from the left"
    if scene.key == "vehicles":
        return "the oldest" if k == 1 else f"the {_ORD[k]}-oldest"
    if scene.key == "golfers":
        return _ORD[k]
    return "the cheapest" if k == 1 else f"the {_ORD[k]}-cheapest"


def _verb(scene: _Scene) -> str:
    return "finished" if scene.key == "golfers" else _be(scene)


def _at_sentence(scene: _Scene, name: str, phrase: str, cap: bool) -> str:
    return f"{_subj(scene, name, cap)} {_verb(scene)} {phrase}"


def _rel_sentence(scene: _Scene, a: str, b: str, forward: bool, cap: bool) -> str:
    """`a` is nearer the start than `b`, said as "a before b" or "b after a"."""
    if forward:
        return f"{_subj(scene, a, cap)} {scene.before} {_subj(scene, b)}"
    return f"{_subj(scene, b, cap)} {scene.after} {_subj(scene, a)}"


def _join(parts: list[str]) -> str:
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _with_article(name: str) -> str:
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


# --------------------------------------------------------- order bitsets ---


@dataclass(frozen=True)
class _Space:
    """All orders of n objects; `at[o][p]` is the set of orders that put
    object o at position p (1-based), `before[a][b]` those with a before b."""

    n: int
    perms: tuple[tuple[int, ...], ...]  # perms[i][o] = position of object o
    full: int
    at: tuple[tuple[int, ...], ...]
    before: tuple[tuple[int, ...], ...]

    def decode(self, orders: int) -> tuple[int, ...]:
        """One order in a non-empty set (the lowest)."""
        return self.perms[(orders & -orders).bit_length() - 1]


@lru_cache(maxsize=None)
def _space(n: int) -> _Space:
    perms = tuple(itertools.permutations(range(1, n + 1)))
    at = [[0] * (n + 1) for _ in range(n)]
    for i, perm in enumerate(perms):
        bit = 1 << i
        for o, p in enumerate(perm):
            at[o][p] |= bit
    before = [[0] * n for _ in range(n)]
    for a in range(n):
        for b in range(n):
            if a != b:
                m = 0
                for p in range(1, n + 1):
                    for q in range(p + 1, n + 1):
                        m |= at[a][p] & at[b][q]
                before[a][b] = m
    return _Space(n, perms, (1 << len(perms)) - 1, tuple(map(tuple, at)), tuple(map(tuple, before)))


# ------------------------------------------------------------ the parser ---

_ORD_RE = r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|1st|2nd|3rd|10th|[4-9]th)"
_DIR_RE = r"(?:left|right|oldest|newest|youngest|cheapest|least[- ]expensive|most[- ]expensive)"
_POS_RE = (
    rf"(?:the\s+)?(?:{_ORD_RE}[- ]to[- ]last"
    rf"|{_ORD_RE}(?:\s+from\s+the\s+|[- ]|\s+){_DIR_RE}"
    r"|leftmost|rightmost|oldest|newest|youngest|cheapest|least[- ]expensive|most[- ]expensive|last|middle"
    r"|position\s+\d{1,2}"
    rf"|{_ORD_RE}(?:\s+(?:position|place|one))?)"
)
_START_DIRS = {"left", "leftmost", "oldest", "first", "cheapest", "least expensive", "top"}
_END_DIRS = {"right", "rightmost", "newest", "youngest", "last", "most expensive", "bottom"}
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
        return n + 1 - _ORD_VALUE[m.group(1)]
    m = re.fullmatch(rf"({_ORD_RE}) (?:from the )?(left|right|oldest|newest|youngest|cheapest|least expensive|most expensive)", s)
    if m:
        k = _ORD_VALUE[m.group(1)]
        return k if m.group(2) in _START_DIRS else n + 1 - k
    if s in _START_DIRS:
        return 1
    if s in _END_DIRS:
        return n
    if s == "middle":
        return (n + 1) // 2 if n % 2 else None
    m = re.fullmatch(r"position (\d{1,2})", s)
    if m:
        return int(m.group(1))
    m = re.fullmatch(rf"({_ORD_RE})(?: position| place| one)?", s)
    if m:
        return _ORD_VALUE[m.group(1)]
    return None


@dataclass(frozen=True)
class _Claim:
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


_POOL_NAMES = tuple(sorted({name for scene in _SCENES.values() for name in scene.pool}))


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


class _Reader:
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

    def claims(self, text: str) -> list[_Claim]:
        out: list[_Claim] = []
        for m in self.g.claim_rel.finditer(text):
            a, b = self.index(m.group("a")), self.index(m.group("b"))
            if a is None or b is None or a == b:
                continue
            first = _rel_is_before(m.group("rel")) != bool(m.group("neg"))
            out.append(_Claim("before", a, b, m.start(), m.end()) if first else _Claim("before", b, a, m.start(), m.end()))
        for m in self.g.claim_at.finditer(text):
            a = self.index(m.group("a"))
            if a is None or any(c.start <= m.start() < c.end for c in out):
                continue
            kind = "notat" if m.group("neg") else "at"
            out.append(_Claim(kind, a, _pos_value(m.group("pos"), self.n), m.start(), m.end()))
        return sorted(out, key=lambda c: c.start)


# ------------------------------------------------------------ the puzzle ---


@dataclass(frozen=True)
class _Clue:
    key: tuple[str, int, int]  # ("at", object, position) | ("before", a, b)
    text: str  # the sentence as the question writes it, with its period


@dataclass(frozen=True)
class _Puzzle:
    scene: _Scene
    objects: tuple[str, ...]
    solution: tuple[int, ...]  # solution[o] = position of object o
    clues: tuple[_Clue, ...]
    options: tuple[tuple[int, int], ...]  # (object, position) each option claims
    option_texts: tuple[str, ...]
    answer_index: int

    @property
    def n(self) -> int:
        return len(self.objects)

    @property
    def space(self) -> _Space:
        return _space(self.n)

    @cached_property
    def sol_mask(self) -> int:
        sp = self.space
        m = sp.full
        for o, p in enumerate(self.solution):
            m &= sp.at[o][p]
        return m

    def mask(self, key: tuple[str, int, int | None]) -> int:
        kind, a, b = key
        sp = self.space
        if b is None or not 0 <= a < self.n:
            return 0
        if kind == "at":
            return sp.at[a][b] if 1 <= b <= self.n else 0
        if kind == "notat":
            return sp.full ^ sp.at[a][b] if 1 <= b <= self.n else sp.full
        if kind == "before":
            return sp.before[a][b] if 0 <= b < self.n else 0
        raise ValueError(kind)

    @cached_property
    def reader(self) -> _Reader:
        return _Reader(self.objects, self.n)

    # wording --------------------------------------------------------------
    def subj(self, o: int) -> str:
        return _subj(self.scene, self.objects[o])

    def claim_text(self, o: int, p: int) -> str:
        return _at_sentence(self.scene, self.objects[o], _canon(self.scene, p), cap=False)

    def being(self, o: int, p: int) -> str:
        return f"{self.subj(o)} being {_canon(self.scene, p)}"

    def rel_text(self, a: int, b: int) -> str:
        return _rel_sentence(self.scene, self.objects[a], self.objects[b], True, cap=False)

    def order_text(self) -> str:
        names = [self.objects[o] for o in sorted(range(self.n), key=lambda o: self.solution[o])]
        return f"The order from {self.scene.start} to {self.scene.end} is: {', '.join(names)}."

    def option_step(self, idx: int) -> str:
        return f"Option ({_LETTERS[idx]}) says {_lc(self.option_texts[idx])}, which is true."

    def deduction_text(self, clue_idx: tuple[int, ...], new: list[int]) -> str:
        quotes = _join([f'"{self.clues[i].text.rstrip(".")}"' for i in clue_idx])
        claims = _join([self.claim_text(o, self.solution[o]) for o in sorted(new, key=lambda o: self.solution[o])])
        return f"{quotes}, so {claims}."

    # meta ------------------------------------------------------------------
    def to_meta(self) -> dict[str, Any]:
        return {
            "scene": self.scene.key,
            "objects": list(self.objects),
            "solution": list(self.solution),
            "clues": [{"kind": c.key[0], "a": c.key[1], "b": c.key[2], "text": c.text} for c in self.clues],
            "options": [[o, p] for o, p in self.options],
            "answer_index": self.answer_index,
        }

    @classmethod
    def from_meta(cls, meta: Any, option_texts: tuple[str, ...]) -> "_Puzzle | None":
        """The puzzle of a problem's meta, or None when meta does not hold a
        complete, consistent, uniquely solvable one (e.g. an external record)."""
        try:
            scene = _SCENES[meta["scene"]]
            objects = tuple(str(o) for o in meta["objects"])
            n = len(objects)
            if not _MIN_N <= n <= _MAX_N or len(set(o.lower() for o in objects)) != n:
                return None
            solution = tuple(int(p) for p in meta["solution"])
            if sorted(solution) != list(range(1, n + 1)):
                return None
            clues = []
            for c in meta["clues"]:
                kind, a, b = str(c["kind"]), int(c["a"]), int(c["b"])
                if kind not in ("at", "before"):
                    return None
                clues.append(_Clue((kind, a, b), str(c["text"])))
            options = tuple((int(o), int(p)) for o, p in meta["options"])
            answer_index = int(meta["answer_index"])
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        if not 0 <= answer_index < len(options) or not all(0 <= o < n and 1 <= p <= n for o, p in options):
            return None
        texts = option_texts if len(option_texts) == len(options) else tuple(
            _at_sentence(scene, objects[o], _pos_phrase(scene, p, n, False), cap=True) for o, p in options
        )
        pz = cls(scene, objects, solution, tuple(clues), options, texts, answer_index)
        sp = pz.space
        orders = sp.full
        for c in pz.clues:
            m = pz.mask(c.key)
            if not m & pz.sol_mask:
                return None  # a clue the solution breaks
            orders &= m
        o, p = options[answer_index]
        if orders != pz.sol_mask or solution[o] != p:
            return None
        return pz


# ------------------------------------------------------------ the checker ---


@dataclass
class _State:
    """What the steps so far have established: the set of orders consistent
    with every claim made, whether the full order was stated, and which
    options were shown true."""

    orders: int
    order_done: bool = False
    true_options: set[int] = field(default_factory=set)


_QUOTE_RE = re.compile(r'"([^"]*)"|“([^”]*)”')
_OPTION_HEAD_RE = re.compile(r"\s*options?\b", re.IGNORECASE)
_OPTION_START_RE = re.compile(r"\s*(?P<head>options?\s*\(?(?P<letter>[A-Za-z])\)?)(?![A-Za-z])", re.IGNORECASE)
_VERDICT_RE = re.compile(
    r"(?P<vphrase>(?:which|this|that|it)\s+is\s+(?P<verdict>true|false|correct|incorrect|wrong|right))(?!\w)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _OptionStep:
    """`Option (A) says <statement>, which is true.` Spans index the step."""

    letter: str
    letter_span: tuple[int, int]
    head: str
    stmt: str
    vphrase: str
    verdict: str
    verdict_span: tuple[int, int]


def _parse_option_step(text: str) -> _OptionStep | None:
    # Parsed in pieces: one regex with several optional whitespace runs
    # around a lazy statement backtracks badly on long model output.
    m = _OPTION_START_RE.match(text)
    if not m:
        return None
    v = _VERDICT_RE.search(text, m.end())
    if not v:
        return None
    stmt = text[m.end() : v.start()].strip()
    if stmt.lower().endswith(" and"):
        stmt = stmt[:-4]
    stmt = stmt.rstrip().rstrip(",").strip()
    for lead in ("says ", "states ", "reads ", "claims ", "is ", ":", "that "):
        if stmt.lower().startswith(lead):
            stmt = stmt[len(lead) :].lstrip()
    if not stmt:
        return None
    return _OptionStep(
        letter=m.group("letter"),
        letter_span=m.span("letter"),
        head=m.group("head"),
        stmt=stmt,
        vphrase=v.group("vphrase"),
        verdict=v.group("verdict"),
        verdict_span=v.span("verdict"),
    )


_ORDER_HEAD_RE = re.compile(r"\border\s+from\b", re.IGNORECASE)
# Direction names have at most three words; bounded groups and a greedy list
# keep matching linear on long model output.
_ORDER_RE = re.compile(
    r"order\s+from\s+(?:the\s+)?(?P<a>[A-Za-z]+(?:[ -][A-Za-z]+){0,2}?)\s+to\s+(?:the\s+)?(?P<b>[A-Za-z]+(?:[ -][A-Za-z]+){0,2}?)"
    r"(?:\s+(?:is|was|would\s+be))?\s*:(?P<list>.*)",
    re.IGNORECASE,
)


def _snippet(text: str, limit: int = 60) -> str:
    """A short leading piece of a text, cut at a word boundary (verbatim)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit]


def _blank_quotes(text: str) -> str:
    return _QUOTE_RE.sub(lambda m: " " * len(m.group(0)), text)


Err = tuple[str, str]  # (segment, reason)


class _Checker:
    def __init__(self, pz: _Puzzle):
        self.pz = pz
        self.reader = pz.reader
        self.sol = pz.sol_mask
        self.clue_keys = {c.key: i for i, c in enumerate(pz.clues)}

    def step(self, text: str, st: _State) -> Err | None:
        """Check one step against the state; on success update the state."""
        if _OPTION_HEAD_RE.match(text):
            return self._option(text, st)
        if _ORDER_HEAD_RE.search(text):
            return self._order(text, st)
        return self._deduction(text, st)

    # -- deductions -----------------------------------------------------------
    def _deduction(self, text: str, st: _State) -> Err | None:
        pz = self.pz
        premise = st.orders
        cited: list[int] = []
        quotes = list(_QUOTE_RE.finditer(text))
        for q in quotes:
            content = q.group(1) if q.group(1) is not None else q.group(2)
            key = self.reader.statement(content)
            if key not in self.clue_keys:
                said = _snippet(content, 80)
                return (said or q.group(0)), f'the puzzle does not say "{said.rstrip(".")}"'
            cited.append(self.clue_keys[key])
            premise &= pz.mask(key)
        claims = self.reader.claims(_blank_quotes(text))
        if not claims and not quotes:
            return _snippet(text), _FORM_REASON
        # A claim that restates a clue (unquoted) cites it, wherever it stands.
        for c in claims:
            if c.key in self.clue_keys:
                cited.append(self.clue_keys[c.key])
                premise &= pz.mask(c.key)
        facts = st.orders
        for c in claims:
            segment = text[c.start : c.end]
            if c.key not in self.clue_keys:
                err = self._judge(c, premise, st.orders, cited)
                if err:
                    return segment, err
            premise &= pz.mask(c.key)
            facts &= pz.mask(c.key)
        st.orders = facts
        return None

    def _judge(self, c: _Claim, premise: int, known: int, cited: list[int]) -> str | None:
        """None when the claim is true and follows from the premise, else why not."""
        pz, sp = self.pz, self.pz.space
        if c.b is None or (c.kind != "before" and not 1 <= c.b <= pz.n):
            return f"there are only {_NUMBER_WORDS.get(pz.n, pz.n)} {pz.scene.noun}"
        m = pz.mask(c.key)
        if not m & self.sol:
            return self._why_false(c, m, known, cited)
        rest = premise & (sp.full ^ m)
        if rest:
            alt = sp.decode(rest)
            if c.kind == "before":
                return f"nothing so far rules out that {pz.rel_text(c.b, c.a)}"
            return f"nothing so far rules out {pz.being(c.a, alt[c.a])}"
        return None

    def _why_false(self, c: _Claim, m: int, known: int, cited: list[int]) -> str:
        pz, sp = self.pz, self.pz.space
        if not known & m:
            if c.kind == "at":
                for o in range(pz.n):
                    if o != c.a and not known & (sp.full ^ sp.at[o][c.b]):
                        return f"an earlier step already showed that {pz.claim_text(o, c.b)}"
                for p in range(1, pz.n + 1):
                    if not known & (sp.full ^ sp.at[c.a][p]):
                        return f"an earlier step already showed that {pz.claim_text(c.a, p)}"
            return "it contradicts the earlier steps"
        order = cited + [i for i in range(len(pz.clues)) if i not in cited]
        for i in order:
            if not known & m & pz.mask(pz.clues[i].key):
                return f'it contradicts "{pz.clues[i].text.rstrip(".")}"'
        if c.kind == "before":
            return f"in fact {pz.rel_text(c.b, c.a)}"
        return f"in fact {pz.claim_text(c.a, pz.solution[c.a])}"

    # -- the order -------------------------------------------------------------
    def _order(self, text: str, st: _State) -> Err | None:
        pz, sp = self.pz, self.pz.space
        m = _ORDER_RE.search(text)
        if not m:
            return _snippet(text), _FORM_REASON
        a = " ".join(m.group("a").lower().replace("-", " ").split())
        b = " ".join(m.group("b").lower().replace("-", " ").split())
        if a in _START_DIRS and b in _END_DIRS:
            forward = True
        elif a in _END_DIRS and b in _START_DIRS:
            forward = False
        else:
            return _snippet(m.group(0), 40), _FORM_REASON
        listed = m.group("list").strip().rstrip(".").strip()
        items = [re.sub(r"^(?:and\s+)?(?:the\s+)?", "", s.strip(), flags=re.IGNORECASE).strip() for s in re.split(r",|\s+and\s+", listed)]
        items = [s for s in items if s]
        idx: list[int] = []
        for item in items:
            o = self.reader.index(item)
            if o is None:
                return item, f'"{item}" is not one of the {pz.scene.noun}'
            idx.append(o)
        if sorted(idx) != list(range(pz.n)):
            return listed, f"the order must name each of the {_NUMBER_WORDS.get(pz.n, pz.n)} {pz.scene.noun} once"
        for rank, o in enumerate(idx):
            p = rank + 1 if forward else pz.n - rank
            if pz.solution[o] != p:
                return items[rank], f"in fact {pz.claim_text(o, pz.solution[o])}"
        for item, o in zip(items, idx):
            rest = st.orders & (sp.full ^ sp.at[o][pz.solution[o]])
            if rest:
                return item, f"nothing so far rules out {pz.being(o, sp.decode(rest)[o])}"
        st.orders &= self.sol
        st.order_done = True
        return None

    # -- an option -------------------------------------------------------------
    def _option(self, text: str, st: _State) -> Err | None:
        pz, sp = self.pz, self.pz.space
        m = _parse_option_step(text)
        if m is None:
            return _snippet(text), _FORM_REASON
        idx = _LETTERS.find(m.letter.upper())
        if not 0 <= idx < len(pz.options):
            return m.head, f"the options only go from (A) to ({_LETTERS[len(pz.options) - 1]})"
        stmt = m.stmt
        claims = [c for c in self.reader.claims(stmt) if c.kind == "at"]
        if not claims:
            return stmt.strip(), _FORM_REASON
        o, p = pz.options[idx]
        if (claims[0].a, claims[0].b) != (o, p):
            return stmt.strip().strip("\"“”").strip(), f'option ({_LETTERS[idx]}) says "{pz.option_texts[idx]}"'
        said_true = m.verdict.lower() in ("true", "correct", "right")
        actual = pz.solution[o] == p
        if said_true != actual:
            fact = _lc(pz.option_texts[idx]) if actual else pz.claim_text(o, pz.solution[o])
            return m.vphrase, f"in fact {fact}"
        mask = sp.at[o][p] if said_true else sp.full ^ sp.at[o][p]
        rest = st.orders & (sp.full ^ mask)
        if rest:
            alt = sp.decode(rest)[o]
            return m.vphrase, f"nothing so far rules out {pz.being(o, alt)}"
        st.orders &= mask
        if said_true:
            st.true_options.add(idx)
        return None

    # -- the continuation --------------------------------------------------------
    def best_deduction(self, orders: int) -> tuple[tuple[int, ...], list[int]] | None:
        """The fewest clues that, with what is known, fix at least one more
        object (most objects among ties; the earliest clues among those)."""
        pz, sp = self.pz, self.pz.space
        masks = [pz.mask(c.key) for c in pz.clues]
        unfixed = [o for o in range(pz.n) if orders & (sp.full ^ sp.at[o][pz.solution[o]])]
        for size in range(1, len(masks) + 1):
            best: tuple[tuple[int, ...], list[int]] | None = None
            for combo in itertools.combinations(range(len(masks)), size):
                prem = orders
                for i in combo:
                    prem &= masks[i]
                new = [o for o in unfixed if not prem & (sp.full ^ sp.at[o][pz.solution[o]])]
                if new and (best is None or len(new) > len(best[1])):
                    best = (combo, new)
            if best:
                return best
        return None

    def finish(self, st: _State) -> list[str]:
        """Correct steps from state `st` to the end (the answer's option step)."""
        pz, sp = self.pz, self.pz.space
        if pz.answer_index in st.true_options:
            return []
        steps: list[str] = []
        orders = st.orders
        while orders.bit_count() > 1:
            found = self.best_deduction(orders)
            if found is None:  # cannot happen: the clues together allow one order
                break
            combo, new = found
            steps.append(pz.deduction_text(combo, new))
            for o in new:
                orders &= sp.at[o][pz.solution[o]]
        if not st.order_done:
            steps.append(pz.order_text())
        steps.append(pz.option_step(pz.answer_index))
        return steps


# ------------------------------------------------------------ answers ---

_LETTER_RE = re.compile(r"\(?\s*([A-Za-z])\s*\)?[.:]?")
_LEAD_LETTER_RE = re.compile(r"(?:option\s*)?\(([A-Za-z])\)(?![\w])|option\s+([A-Za-z])(?![\w])", re.IGNORECASE)
_ANSWER_IS_RE = re.compile(r"answer is(.*)$", re.IGNORECASE | re.DOTALL)


def _normalise(answer: str | None) -> str | None:
    """`(A)`, `A`, `a)`, `Option A`, `(A) The white book ...` -> `(A)`; other
    text (an option's wording) is kept, tidied."""
    if answer is None:
        return None
    s = " ".join(str(answer).split()).strip()
    if not s:
        return None
    m = _LETTER_RE.fullmatch(s)
    if m:
        return f"({m.group(1).upper()})"
    m = _LEAD_LETTER_RE.match(s)
    if m:
        return f"({(m.group(1) or m.group(2)).upper()})"
    s = s.rstrip(".").strip()
    return s or None


def _is_letter(a: str) -> bool:
    return len(a) == 3 and a[0] == "(" and a[2] == ")" and a[1] in _LETTERS


def _text_key(s: str) -> str:
    s = " ".join(s.lower().split()).rstrip(".").strip()
    return re.sub(r"^the ", "", s)


def _letter_of(answer: str | None, options: tuple[str, ...]) -> str | None:
    a = _normalise(answer)
    if a is None:
        return None
    if _is_letter(a):
        return a
    key = _text_key(a)
    for i, opt in enumerate(options):
        if _text_key(opt) == key:
            return f"({_LETTERS[i]})"
    return None


# ------------------------------------------------------------ questions ---

_OPTIONS_SPLIT_RE = re.compile(r"\bOptions:\s*", re.IGNORECASE)
_OPTION_LETTER_RE = re.compile(r"\(([A-Z])\)")
_INTRO_RE = re.compile(
    r"^(?P<lead>.*?)(?:there\s+are|there\s+were|sells)\s+(?P<num>\w+)\s+(?P<noun>[a-z]+):\s*(?P<items>[^.]+)\.\s*(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_PREAMBLE_RE = re.compile(r"^.*?within each paragraph\.\s*", re.IGNORECASE | re.DOTALL)


def _render_question(scene: _Scene, objects: list[str], clues: list[str], options: list[str]) -> str:
    n = len(objects)
    items = [_with_article(o) if scene.article else o for o in objects]
    intro = scene.intro.format(n=_NUMBER_WORDS[n], items=", ".join(items[:-1]) + ", and " + items[-1])
    lines = [f"{PREAMBLE.format(n=_NUMBER_WORDS[n])} {intro} {' '.join(clues)}", "Options:"]
    lines += [f"({_LETTERS[i]}) {t}" for i, t in enumerate(options)]
    return "\n".join(lines)


def parse_question(question: str) -> tuple[_Puzzle | None, tuple[str, ...]]:
    """The puzzle in a question in BIG-bench's phrasing (None when it is not in
    that phrasing or has no unique solution), and the option texts found."""
    parts = _OPTIONS_SPLIT_RE.split(question, maxsplit=1)
    head, tail = parts[0], parts[1] if len(parts) > 1 else ""
    marks = list(_OPTION_LETTER_RE.finditer(tail))
    options = tuple(" ".join(tail[a.end() : b.start() if b else len(tail)].split()) for a, b in zip(marks, marks[1:] + [None]))
    paragraph = _PREAMBLE_RE.sub("", head.strip(), count=1)
    m = _INTRO_RE.match(paragraph)
    if not m or m.group("noun").lower() not in _NOUN_SCENE:
        return None, options
    scene = _SCENES[_NOUN_SCENE[m.group("noun").lower()]]
    names = [re.sub(r"^(?:and\s+)?(?:(?:a|an|the)\s+)?", "", s.strip(), flags=re.IGNORECASE).strip() for s in re.split(r",|\s+and\s+", m.group("items"))]
    names = [s for s in names if s]
    n = len(names)
    num = m.group("num").lower()
    if not _MIN_N <= n <= _MAX_N or len({s.lower() for s in names}) != n or _WORD_NUMBERS.get(num, int(num) if num.isdigit() and len(num) < 3 else -1) != n:
        return None, options
    reader = _Reader(tuple(names), n)
    clues: list[_Clue] = []
    for sentence in re.split(r"(?<=\.)\s+", m.group("rest").strip()):
        if not sentence.strip():
            continue
        key = reader.statement(sentence)
        if key is None or key[2] is None or (key[0] == "at" and not 1 <= key[2] <= n):
            return None, options
        clues.append(_Clue(key, " ".join(sentence.split())))  # type: ignore[arg-type]
    opts: list[tuple[int, int]] = []
    for t in options:
        key = reader.statement(t)
        if key is None or key[0] != "at" or key[2] is None or not 1 <= key[2] <= n:
            return None, options
        opts.append((key[1], key[2]))
    sp = _space(n)
    orders = sp.full
    for c in clues:
        orders &= (sp.at[c.key[1]][c.key[2]] if c.key[0] == "at" else sp.before[c.key[1]][c.key[2]])
    if orders.bit_count() != 1 or not opts:
        return None, options
    solution = sp.decode(orders)
    true = [i for i, (o, p) in enumerate(opts) if solution[o] == p]
    if len(true) != 1:
        return None, options
    return _Puzzle(scene, tuple(names), solution, tuple(clues), tuple(opts), options, true[0]), options


# ------------------------------------------------------------ the task ---


class LogicalDeductionTask:
    name = "logical_deduction"
    scripted = True

    def levels(self, preset: str, subset: str) -> list[str]:
        if preset not in PRESETS:
            raise TripostError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        if subset not in SUBSETS:
            raise TripostError(f"unknown subset {subset!r}; choose from {', '.join(SUBSETS)}")
        return list(_LEVELS[preset][subset])

    # -- generation ------------------------------------------------------------
    def generate(self, rng: random.Random, level: str) -> Problem:
        try:
            n = int(str(level))
        except ValueError:
            n = 0
        if not _MIN_N <= n <= _MAX_N:
            raise TripostError(f"logical_deduction: unknown level {level!r} (expected a number of objects, {_MIN_N} to {_MAX_N})")
        scene = _SCENES[rng.choice(sorted(_SCENES))]
        objects = rng.sample(scene.pool, n)
        solution = list(range(1, n + 1))
        rng.shuffle(solution)
        sp = _space(n)
        keys = self._clues(rng, sp, solution)
        texts: list[str] = []
        for kind, a, b in keys:
            if kind == "at":
                sentence = _at_sentence(scene, objects[a], _pos_phrase(scene, b, n, rng.random() < 0.5), cap=True)
            else:
                sentence = _rel_sentence(scene, objects[a], objects[b], rng.random() < 0.5, cap=True)
            texts.append(sentence + ".")
        q = rng.randint(1, n)
        from_end = rng.random() < 0.5
        option_texts = tuple(_at_sentence(scene, o, _pos_phrase(scene, q, n, from_end), cap=True) for o in objects)
        answer_index = solution.index(q)
        pz = _Puzzle(
            scene, tuple(objects), tuple(solution),
            tuple(_Clue(k, t) for k, t in zip(keys, texts)),
            tuple((o, q) for o in range(n)), option_texts, answer_index,
        )
        answer = f"({_LETTERS[answer_index]})"
        steps = _Checker(pz).finish(_State(sp.full))
        return Problem(
            id="",
            family=self.name,
            question=_render_question(scene, objects, texts, list(option_texts)),
            answer=answer,
            rationale=render_rationale(steps, answer),
            difficulty=str(n),
            options=option_texts,
            meta=pz.to_meta(),
        )

    @staticmethod
    def _clues(rng: random.Random, sp: _Space, solution: list[int]) -> list[tuple[str, int, int]]:
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

    # -- external records ------------------------------------------------------
    def from_record(self, record: dict[str, Any]) -> Problem:
        if not isinstance(record, dict):
            raise TripostError("logical_deduction record must be a JSON object")
        check_record(record)  # loosely read fields' types, and sizes
        question, answer = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise TripostError("logical_deduction record: field 'question' must be a non-empty string")
        if not isinstance(answer, str) or not answer.strip():
            raise TripostError("logical_deduction record: field 'answer' must be a non-empty string like \"(A)\"")
        question = question.strip()
        pz, parsed_options = parse_question(question)
        options: tuple[str, ...] = parsed_options
        extra = record.get("options")
        if extra is not None:
            if not isinstance(extra, list) or not all(isinstance(o, str) for o in extra):
                raise TripostError("logical_deduction record: field 'options' must be a list of strings")
            given = tuple(re.sub(r"^\([A-Z]\)\s*", "", " ".join(o.split())) for o in extra)
            if options and given != options:
                pz = None  # the question and the record disagree: trust the record
            options = given
        letter = _letter_of(answer, options)
        if options:
            if letter is None or _LETTERS.index(letter[1]) >= len(options):
                raise TripostError(f"logical_deduction record: answer {answer.strip()!r} is not one of the {len(options)} options")
            answer = letter
        else:
            answer = _normalise(answer) or answer.strip()
        if pz is not None and f"({_LETTERS[pz.answer_index]})" != answer:
            pz = None  # the record's gold answer wins; check only the final answer
        rationale = record.get("rationale")
        if not isinstance(rationale, str):
            rationale = render_rationale(_Checker(pz).finish(_State(pz.space.full)), answer) if pz else ""
        difficulty = record.get("difficulty")
        if difficulty is None:
            difficulty = str(pz.n) if pz else str(len(options) or "external")
        return Problem(
            id=str(record.get("id") or problem_id(self.name, question)),
            family=self.name,
            question=question,
            answer=answer,
            rationale=rationale,
            difficulty=str(difficulty),
            split=split_of(question),
            options=options,
            meta=pz.to_meta() if pz else {},
        )

    # -- answers ---------------------------------------------------------------
    def parse_answer(self, text: str) -> str | None:
        if not isinstance(text, str):
            return None
        try:
            parsed = parse_rationale(text)
        except ValueError:
            return None
        if parsed.final is not None:
            return _normalise(parse_final_answer(parsed.final))
        if parsed.steps:
            return None
        m = _ANSWER_IS_RE.search(text)
        return _normalise(m.group(1).strip().rstrip(".") if m else text)

    def check_answer(self, problem: Problem, answer: str | None) -> bool:
        a = self.parse_answer(answer) if isinstance(answer, str) else None
        if a is None:
            return False
        la, lg = _letter_of(a, problem.options), _letter_of(problem.answer, problem.options)
        if la is not None and lg is not None:
            return la == lg
        return _text_key(a) == _text_key(problem.answer)

    # -- step checking -----------------------------------------------------------
    def check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        try:
            return self._check_steps(problem, rationale)
        except Exception:  # noqa: BLE001 - model output must never crash a run; tests call _check_steps
            return StepCheck(False, 1, "", _FORM_REASON, 0, None)

    def _check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        text = rationale if isinstance(rationale, str) else ""
        try:
            parsed = parse_rationale(text)
        except ValueError:  # a step number too long for int()
            return StepCheck(False, 1, "", _FORM_REASON, 0, None)
        n = parsed.n_steps
        answer = _normalise(parse_final_answer(parsed.final)) if parsed.final is not None else None
        correct = self.check_answer(problem, answer)

        def result(step: int | None, segment: str = "", reason: str = "") -> StepCheck:
            return StepCheck(correct, step, segment, reason, n, answer)

        final_seg = (parse_final_answer(parsed.final) or _snippet(parsed.final)) if parsed.final is not None else ""
        pz = _Puzzle.from_meta(problem.meta, problem.options) if problem.meta else None
        if pz is None:  # an external record: only the final answer can be checked
            if correct:
                return result(None)
            if parsed.final is None:
                return result(n + 1, "", "the final response is missing")
            return result(n + 1, final_seg, f"the correct answer is {problem.answer}")
        if n == 0:
            return result(1, final_seg or _snippet(text), "there are no numbered reasoning steps before the answer")
        checker = _Checker(pz)
        st = _State(pz.space.full)
        for k, (num, step) in enumerate(zip(parsed.numbers, parsed.steps), start=1):
            if num != k:
                return result(k, _snippet(step, 40), f"this step is numbered ({num}) but should be ({k})")
            err = checker.step(step, st)
            if err is not None:
                return result(k, *err)
        if parsed.final is None:
            return result(n + 1, "", "the final response is missing")
        if answer is None:
            return result(n + 1, final_seg, 'the final response should say "So the answer is (X)."')
        letter = _letter_of(answer, problem.options)
        if not correct:
            if letter is None or _LETTERS.index(letter[1]) >= len(pz.options):
                return result(n + 1, final_seg, f"the options only go from (A) to ({_LETTERS[len(pz.options) - 1]})")
            i = _LETTERS.index(letter[1])
            o = pz.options[i][0]
            return result(n + 1, final_seg, f"option {letter} is false: in fact {pz.claim_text(o, pz.solution[o])}")
        o, p = pz.options[pz.answer_index]
        rest = st.orders & (pz.space.full ^ pz.space.at[o][p])
        if rest:
            return result(n + 1, final_seg, f"the steps above do not show that {_lc(pz.option_texts[pz.answer_index])}")
        return result(None)

    # -- the scripted teacher's continuation ---------------------------------------
    def continue_rationale(self, problem: Problem, kept_steps: list[str]) -> tuple[list[str], str]:
        pz = _Puzzle.from_meta(problem.meta, problem.options) if problem.meta else None
        if pz is None:
            raise TripostError(
                f"logical_deduction problem {problem.id or '(no id)'} has no parsed puzzle; "
                "the scripted teacher can only check its final answer"
            )
        checker = _Checker(pz)
        st = _State(pz.space.full)
        for step in kept_steps:
            # Kept steps are the correct prefix of an attempt; should one be
            # wrong anyway, carry on from what the right ones established.
            if checker.step(step, st) is not None:
                break
        return checker.finish(st), f"({_LETTERS[pz.answer_index]})"

    # -- corruption (tests and demos) ------------------------------------------------
    def corrupt(self, problem: Problem, step: int, rng: random.Random) -> str:
        pz = _Puzzle.from_meta(problem.meta, problem.options) if problem.meta else None
        if pz is None:
            raise TripostError("logical_deduction: only problems with a parsed puzzle can be corrupted")
        text = problem.rationale
        parsed = parse_rationale(text)
        n = parsed.n_steps
        if not 1 <= step <= n + 1:
            raise TripostError(f"logical_deduction: step {step} is out of range 1..{n + 1}")
        if step == n + 1:
            prefix = text[: parsed.final_offset] if parsed.final_offset is not None else text
            if prefix and not prefix.endswith("\n"):
                prefix += "\n"
            wrong = [f"({_LETTERS[i]})" for i in range(len(pz.options)) if i != pz.answer_index]
            rng.shuffle(wrong)
            for ans in wrong:
                out = prefix + final_line(ans)
                if self.check_steps(problem, out).first_error_step == step:
                    return out
            return prefix + "(Final response) I do not know."
        start = parsed.offsets[step - 1]
        end = parsed.offset_of(step + 1)
        body = text[start:end]
        tail = body[len(body.rstrip("\r\n")) :] or "\n"
        candidates = self._wrong_steps(pz, parsed.steps[step - 1], rng)
        for new in candidates + ["The answer must be obvious."]:
            out = text[:start] + f"({step}) {new}" + tail + text[end:]
            if self.check_steps(problem, out).first_error_step == step:
                return out
        raise AssertionError("unreachable: a step in no known form is always flagged")

    @staticmethod
    def _wrong_steps(pz: _Puzzle, step: str, rng: random.Random) -> list[str]:
        """Edits of a correct step that make one claim in it false."""
        out: list[str] = []
        reader = pz.reader
        om = _parse_option_step(step)
        if _OPTION_HEAD_RE.match(step) and om:
            flipped = {"true": "false", "false": "true", "correct": "incorrect", "incorrect": "correct", "right": "wrong", "wrong": "right"}
            (vs, ve), (ls, le) = om.verdict_span, om.letter_span
            out.append(step[:vs] + flipped.get(om.verdict.lower(), "false") + step[ve:])
            idx = _LETTERS.find(om.letter.upper())
            others = [i for i in range(len(pz.options)) if i != idx]
            if others:
                out.append(step[:ls] + _LETTERS[rng.choice(others)] + step[le:])
        elif _ORDER_HEAD_RE.search(step) and (m := _ORDER_RE.search(step)):
            names = [pz.objects[o] for o in sorted(range(pz.n), key=lambda o: pz.solution[o])]
            i = rng.randrange(pz.n - 1)
            names[i], names[i + 1] = names[i + 1], names[i]
            out.append(step[: m.start("list")] + " " + ", ".join(names) + ".")
        else:
            blank = _blank_quotes(step)
            edits: list[str] = []
            for c in reader.claims(blank):
                if c.kind != "at" or c.b is None:
                    continue
                wrong = [p for p in range(1, pz.n + 1) if p != c.b]
                p = rng.choice(wrong)
                edits.append(step[: c.start] + pz.claim_text(c.a, p) + step[c.end :])
            for q in _QUOTE_RE.finditer(step):
                content = q.group(1) if q.group(1) is not None else q.group(2)
                key = reader.statement(content)
                if key is None:
                    continue
                kind, a, b = key
                if kind == "before":
                    said = _rel_sentence(pz.scene, pz.objects[b], pz.objects[a], rng.random() < 0.5, cap=True)
                else:
                    p = rng.choice([p for p in range(1, pz.n + 1) if p != b])
                    said = _at_sentence(pz.scene, pz.objects[a], _pos_phrase(pz.scene, p, pz.n, rng.random() < 0.5), cap=True)
                edits.append(step[: q.start()] + f'"{said}"' + step[q.end() :])
            rng.shuffle(edits)
            out.extend(edits)
        return out
