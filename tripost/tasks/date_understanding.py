"""Date understanding, after BIG-bench's `date_understanding` task.

    Today is Christmas Eve of 1937. What is the date 10 days ago in MM/DD/YYYY?
    Options:
    (A) 12/14/2026
    (B) 12/14/1937
    ...

A problem is a chain of dates. Node 0 is the anchor the question gives (a
date written MM/DD/YYYY, a month-name date like "Apr 10, 1985", a holiday
like "Christmas Eve of 1937" or a period like "the last day of February in
2004"); every later node is the previous one moved by an offset (days, weeks,
months or years, earlier or later): yesterday -> today, the day Jane moved ->
the day she bought a car -> today, and finally today -> the date asked for.
Difficulty = number of reasoning steps of the gold rationale: one step names
the anchor in MM/DD/YYYY when the question does not already, one step per
offset. TriPosT's split (Yu et al. 2024, Sec. 4.1): seen 1-2 steps, unseen
3+; the `small` preset keeps 1 step seen and 2 steps unseen.

    (1) Today is Christmas Eve of 1937, so today is 12/24/1937.
    (2) 10 days ago from 12/24/1937 is 12/14/1937.
    (Final response) So the answer is 12/14/1937.

Month arithmetic (the rule the checker uses, documented here because months
differ in length): moving by N months keeps the day of the month and clamps it
to the last day of the target month (01/31 + 1 month = 02/28, or 02/29 in a
leap year); a year is 12 months (02/29/2004 + 1 year = 02/28/2005). Generated
problems never hit the clamp, so no gold answer depends on the convention.

The step checker reads every date claim in a step (MM/DD/YYYY, also M/D/YYYY
and month-name dates) and every offset phrase ("10 days ago from", "1 day
after", "the day before", "minus 3 weeks", "24 hours later"), binds each offset
to the date it starts from and the date it claims, and judges the claims
against the chain: a date starting a step must already be known (given by the
question or found by an earlier step), a computed date must equal its source
moved by the stated offset, and the date a step ends on must be a date of the
chain. Steps may combine offsets ("2 days after yesterday is tomorrow") or say
things in other words; what they claim must be true and follow.
"""

from __future__ import annotations

import calendar
import random
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from tripost.errors import TripostError
from tripost.format import final_line, parse_final_answer, parse_rationale, render_rationale
from tripost.tasks.base import Problem, StepCheck, problem_id, split_of
from tripost.tasks.external import check_record

FAMILY = "date_understanding"

_LEVELS = {
    ("paper", "seen"): ["1", "2"],
    ("paper", "unseen"): ["3", "4"],
    ("small", "seen"): ["1"],
    ("small", "unseen"): ["2"],
}
_MAX_LEVEL = 4  # steps; the generator's templates go no further
_FORM_REASON = "this step does not follow the expected form"

# --------------------------------------------------------------- dates ---

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_MONTH_NUM = {m.lower(): i + 1 for i, m in enumerate(MONTHS)}
_MONTH_NUM.update({m[:3].lower(): i + 1 for i, m in enumerate(MONTHS)})
_MONTH_NUM["sept"] = 9


def fmt(d: date) -> str:
    return f"{d.month:02d}/{d.day:02d}/{d.year:04d}"


def parse_date(text: str) -> date | None:
    """MM/DD/YYYY (or M/D/YYYY) -> date; None when it is not a calendar date."""
    m = re.fullmatch(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*", text)
    if not m:
        return None
    return _mkdate(int(m.group(3)), int(m.group(1)), int(m.group(2)))


def _mkdate(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def add_months(d: date, months: int) -> date | None:
    """`d` moved by `months`, the day clamped to the target month's end."""
    total = d.year * 12 + d.month - 1 + months
    y, m0 = divmod(total, 12)
    if not 1 <= y <= 9999:
        return None
    return date(y, m0 + 1, min(d.day, calendar.monthrange(y, m0 + 1)[1]))


@dataclass(frozen=True)
class Offset:
    """A signed move of `n` days, weeks, months or years."""

    n: int
    unit: str  # day | week | month | year
    sign: int  # -1 earlier, +1 later

    def apply(self, d: date) -> date | None:
        try:
            if self.unit == "day":
                return d + timedelta(days=self.sign * self.n)
            if self.unit == "week":
                return d + timedelta(days=7 * self.sign * self.n)
            if self.unit == "month":
                return add_months(d, self.sign * self.n)
            return add_months(d, 12 * self.sign * self.n)
        except (OverflowError, ValueError):
            return None

    def clamps(self, d: date) -> bool:
        """Whether moving `d` hits the month-end clamp (generation avoids it)."""
        if self.unit not in ("month", "year"):
            return False
        out = self.apply(d)
        return out is None or out.day != d.day

    def words(self) -> str:
        return f"{self.n} {self.unit}{'' if self.n == 1 else 's'}"

    def canon(self) -> str:
        """`10 days before`, `1 month after`: reads before a date."""
        return f"{self.words()} {'before' if self.sign < 0 else 'after'}"

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "unit": self.unit, "sign": self.sign}

    @classmethod
    def from_json(cls, d: Any) -> "Offset":
        n, unit, sign = d["n"], d["unit"], d["sign"]
        if not (isinstance(n, int) and 0 <= n <= 100000 and unit in ("day", "week", "month", "year") and sign in (-1, 1)):
            raise ValueError("bad offset")
        return cls(n, unit, sign)


# ------------------------------------------------------ reading claims ---


@dataclass(frozen=True)
class _Claim:
    """A date written in a step: its text, span and value (None = no such day)."""

    text: str
    start: int
    end: int
    value: date | None


_NUM_DATE_RE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4})(?![\d/])")
_MONTH_ALT = "|".join(sorted(_MONTH_NUM, key=len, reverse=True))
_NAME_DATE_RE = re.compile(
    rf"\b({_MONTH_ALT})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})(?!\d)", re.IGNORECASE
)


def _find_dates(text: str) -> list[_Claim]:
    found: list[_Claim] = []
    for m in _NUM_DATE_RE.finditer(text):
        value = _mkdate(int(m.group(3)), int(m.group(1)), int(m.group(2)))
        found.append(_Claim(m.group(0), m.start(), m.end(), value))
    for m in _NAME_DATE_RE.finditer(text):
        value = _mkdate(int(m.group(3)), _MONTH_NUM[m.group(1).lower()], int(m.group(2)))
        found.append(_Claim(m.group(0), m.start(), m.end(), value))
    found.sort(key=lambda c: c.start)
    out: list[_Claim] = []
    for c in found:
        if out and c.start < out[-1].end:
            continue
        out.append(c)
    return out


_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
}  # fmt: skip
_WORD_OF = {v: k for k, v in _NUMBER_WORDS.items() if k not in ("a", "an")}
_QTY_ALT = r"\d{1,5}|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
_BEFORE = {"ago from", "ago", "before", "earlier than", "earlier from", "earlier", "prior to", "back from"}
_AFTER = {"after", "later than", "later from", "later", "from now", "hence"}
_NEUTRAL = {"from", "since"}
# Directions that take an object ("10 days ago from 12/24/1937"); the others
# are adverbs ("10 days ago, it was ...", "12/24/1937 minus 10 days").
_PREPOSITIONAL = {
    "ago from", "before", "earlier than", "earlier from", "prior to", "back from",
    "after", "later than", "later from", "from", "since",
}  # fmt: skip
# Longest first, so "ago from" wins over "ago".
_DIR_ALT = "|".join(d.replace(" ", r"\s+") for d in sorted(_BEFORE | _AFTER | _NEUTRAL, key=lambda d: (-len(d), d)))
_OFFSET_RE = re.compile(
    r"(?:(?P<lead>plus|minus|add(?:ing)?|subtract(?:ing)?|forward|backwards?|back|\+|(?<![\w-])-|−)\s*)?"
    rf"\b(?P<qty>{_QTY_ALT})[\s-]+(?P<unit>days?|weeks?|months?|years?|hours?|decades?)\b"
    rf"(?:\s+(?P<dir>{_DIR_ALT})\b)?",
    re.IGNORECASE,
)
_SPECIAL_RE = re.compile(
    r"\bthe\s+(?:day|date)\s+(?P<dir>before|after)\b(?!\s+(?:yesterday|tomorrow)\b)"
    r"|\bthe\s+(?P<rel>next|following|previous|preceding)\s+(?P<unit>day|week|month|year)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _OffsetClaim:
    offset: Offset
    start: int
    end: int
    segment: str  # what feedback quotes: "10 days ago", "the day before"
    prepositional: bool


def _find_offsets(text: str) -> list[_OffsetClaim]:
    out: list[_OffsetClaim] = []
    for m in _OFFSET_RE.finditer(text):
        lead = (m.group("lead") or "").lower()
        direction = " ".join((m.group("dir") or "").lower().split())
        lead_sign = 0
        if lead:
            lead_sign = 1 if lead in ("plus", "add", "adding", "forward", "+") else -1
        if direction in _BEFORE:
            sign = -1
        elif direction in _AFTER:
            sign = 1
        elif direction in _NEUTRAL:
            sign = lead_sign or 1
        else:
            sign = lead_sign
        if sign == 0:
            continue  # "a day that we will never forget": no move is claimed
        qty = m.group("qty").lower()
        n = _NUMBER_WORDS[qty] if qty in _NUMBER_WORDS else int(qty)
        unit = m.group("unit").lower().rstrip("s")
        if unit == "hour":
            if n % 24:
                continue
            n, unit = n // 24, "day"
        elif unit == "decade":
            n, unit = 10 * n, "year"
        seg = m.group(0).strip()
        seg = re.sub(r"\s+(?:from|than|to)$", "", seg, flags=re.IGNORECASE)
        out.append(_OffsetClaim(Offset(n, unit, sign), m.start(), m.end(), seg, direction in _PREPOSITIONAL))
    for m in _SPECIAL_RE.finditer(text):
        if m.group("dir"):
            off = Offset(1, "day", -1 if m.group("dir").lower() == "before" else 1)
            out.append(_OffsetClaim(off, m.start(), m.end(), m.group(0), True))
        else:
            sign = 1 if m.group("rel").lower() in ("next", "following") else -1
            out.append(_OffsetClaim(Offset(1, m.group("unit").lower(), sign), m.start(), m.end(), m.group(0), False))
    out.sort(key=lambda o: o.start)
    return out


def _head(text: str, words: int = 6) -> str:
    """The first few words of `text`, verbatim (a substring of it)."""
    m = re.match(r"\s*(\S+(?:\s+\S+){0,%d})" % (words - 1), text)
    return m.group(1) if m else ""


# ------------------------------------------------------------ checking ---


@dataclass(frozen=True)
class _Error:
    segment: str
    reason: str


@dataclass
class _Chain:
    """The structured view of a generated problem (`Problem.meta`)."""

    nodes: list[date]
    names: list[list[str]]
    hops: list[Offset]
    anchor_desc: str | None
    steps: list[tuple[str, int]]  # gold step text, node it establishes

    @classmethod
    def from_meta(cls, meta: Any) -> "_Chain | None":
        """None when `meta` does not describe a chain (external problems)."""
        if not isinstance(meta, dict) or "nodes" not in meta:
            return None
        try:
            nodes = [parse_date(n["date"]) for n in meta["nodes"]]
            if not nodes or any(d is None for d in nodes):
                return None
            names = [[str(x).lower() for x in n.get("names", [])] for n in meta["nodes"]]
            hops = [Offset.from_json(h) for h in meta["hops"]]
            if len(hops) != len(nodes) - 1:
                return None
            desc = meta.get("anchor", {}).get("desc")
            steps = [(str(s["text"]), int(s["node"])) for s in meta.get("steps", [])]
            return cls([d for d in nodes if d is not None], names, hops, desc if isinstance(desc, str) else None, steps)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def to_meta(self) -> dict[str, Any]:
        return {
            "nodes": [{"date": fmt(d), "names": list(n)} for d, n in zip(self.nodes, self.names)],
            "hops": [h.to_json() for h in self.hops],
            "anchor": {"desc": self.anchor_desc},
            "steps": [{"text": t, "node": i} for t, i in self.steps],
        }


_COPULA = r"(?:is|was|will\s+be|would\s+be|falls\s+on|is\s+on|was\s+on)"


class _Checker:
    """Replays a rationale step by step against the chain of a problem."""

    def __init__(self, chain: _Chain):
        self.chain = chain
        self.index = {d: i for i, d in enumerate(chain.nodes)}
        self.known: set[date] = {chain.nodes[0]}
        self.state = 0  # the furthest node of the chain found so far
        self.steps_done = 0
        names = {}
        for i, ns in enumerate(chain.names):
            for n in ns:
                names.setdefault(n, i)
        self.names = names
        alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        self._name_re = (
            re.compile(rf"\b(?P<name>{alt})\s+{_COPULA}\s+(?:the\s+date\s+)?$", re.IGNORECASE) if names else None
        )

    # -- reasons ---------------------------------------------------------------

    def _next_reason(self) -> str:
        c, s = self.chain, self.state
        if s >= len(c.hops):
            return f"the date asked for, {fmt(c.nodes[-1])}, is already found"
        return f"{c.hops[s].canon()} {fmt(c.nodes[s])} is {fmt(c.nodes[s + 1])}"

    def _start_reason(self, d: date) -> str:
        c = self.chain
        if self.state == 0:
            given = c.anchor_desc or fmt(c.nodes[0])
            if c.anchor_desc:
                return f"the question gives {given}, which is {fmt(c.nodes[0])}"
            return f"the question gives {given}"
        return f"the date found so far is {fmt(c.nodes[self.state])}, not {fmt(d)}"

    def _named(self, text: str, window_start: int, claim: _Claim) -> tuple[str, date] | None:
        """(name, its date) when the date is introduced as `today is ...`."""
        if self._name_re is None or claim.value is None:
            return None
        window = text[window_start : claim.start]
        m = self._name_re.search(window)
        if not m:
            return None
        before = window[: m.start("name")]
        # "the day before yesterday was ..." is not about yesterday.
        if re.search(r"(?:before|after|than|from|since|of)\s+$", before, re.IGNORECASE):
            return None
        name = m.group("name").lower()
        return name, self.chain.nodes[self.names[name]]

    def _name_error(self, text: str, window_start: int, claim: _Claim) -> _Error | None:
        named = self._named(text, window_start, claim)
        if named is not None and named[1] != claim.value:
            return _Error(claim.text, f"{named[0]} is {fmt(named[1])}")
        return None

    # -- one step --------------------------------------------------------------

    def step(self, text: str) -> _Error | None:
        claims = _find_dates(text)
        if not claims:
            return _Error(_head(text), _FORM_REASON)
        for c in claims:
            if c.value is None:
                return _Error(c.text, f"{c.text} is not a valid date")
        bindings = self._bind(text, claims)
        # A date something is computed from ("today is 04/30/2021 + 1 day")
        # is not what a name before it is said to be.
        sources = {s for targets in bindings.values() for s, _ in targets if s is not None}
        local = set(self.known)
        for i, c in enumerate(claims):
            d = c.value
            assert d is not None
            if i in bindings:
                for src_idx, off in bindings[i]:
                    src = claims[src_idx].value if src_idx is not None else self.chain.nodes[self.state]
                    assert src is not None
                    err = self._check_move(src, off, c)
                    if err is not None:
                        return err
            elif d not in local and not (i > 0 and d in self.index):
                # "Tomorrow is 05/02/2021" is true by the question's own words.
                named = self._named(text, claims[i - 1].end if i else 0, c)
                if named is not None and named[1] != d:
                    return _Error(c.text, f"{named[0]} is {fmt(named[1])}")
                if named is None:
                    return _Error(c.text, self._start_reason(d) if i == 0 else self._next_reason())
            named = None if i in sources else self._name_error(text, claims[i - 1].end if i else 0, c)
            if named is not None:
                return named
            local.add(d)
        last = claims[-1]
        assert last.value is not None
        if last.value not in self.index:
            for src_idx, off in bindings.get(len(claims) - 1, []):
                src = claims[src_idx].value if src_idx is not None else self.chain.nodes[self.state]
                assert src is not None
                i = self.index.get(src)
                if i is not None and i < len(self.chain.hops):
                    return self._wrong_offset(off, src, i)
                if i is not None:
                    return _Error(off.segment, f"{fmt(src)} is already the date the question asks for")
            return _Error(last.text, self._next_reason())
        self.known = local
        reached = [self.index[c.value] for c in claims if c.value in self.index]
        self.state = max([self.state, *reached])
        self.steps_done += 1
        return None

    def _check_move(self, src: date, off: _OffsetClaim, c: _Claim) -> _Error | None:
        result = off.offset.apply(src)
        if result == c.value:
            return None
        i = self.index.get(src)
        if i is not None and i < len(self.chain.hops) and c.value == self.chain.nodes[i + 1]:
            # The date is the right one: the offset is what is wrong.
            return self._wrong_offset(off, src, i)
        if result is None:
            return _Error(c.text, f"{off.offset.canon()} {fmt(src)} is not a date")
        return _Error(c.text, f"{off.offset.canon()} {fmt(src)} is {fmt(result)}")

    def _wrong_offset(self, off: _OffsetClaim, src: date, i: int) -> _Error:
        need = self.chain.hops[i].canon()
        return _Error(off.segment, f"the question calls for {need} {fmt(src)}, not {off.offset.canon()}")

    @staticmethod
    def _bind(text: str, claims: list[_Claim]) -> dict[int, list[tuple[int | None, _OffsetClaim]]]:
        """Which offset moves which date to which: target index -> [(source
        index or None for 'the date found so far', offset)]."""
        offsets = _find_offsets(text)
        bindings: dict[int, list[tuple[int | None, _OffsetClaim]]] = {}
        sources: set[int] = set()
        rest: list[_OffsetClaim] = []
        for o in offsets:
            nxt = next((i for i, c in enumerate(claims) if c.start >= o.end), None)
            # "10 days ago from 12/24/1937 is 12/14/1937", "1 day after
            # yesterday, 04/30/2021, ...": the object is the source.
            if (
                o.prepositional
                and nxt is not None
                and nxt + 1 < len(claims)
                and len(text[o.end : claims[nxt].start].split()) <= 3
            ):
                bindings.setdefault(nxt + 1, []).append((nxt, o))
                sources.add(nxt)
            else:
                rest.append(o)
        for o in rest:
            # "12/24/1937 minus 10 days is 12/14/1937", "10 days ago, it was 12/14/1937".
            tgt = next((i for i, c in enumerate(claims) if c.start >= o.end and i not in sources), None)
            if tgt is None:
                continue
            prev = [i for i, c in enumerate(claims) if c.end <= o.start]
            bindings.setdefault(tgt, []).append((prev[-1] if prev else None, o))
        return bindings


# ----------------------------------------------------------- answers ---

_LETTER_RE = re.compile(r"^\(?([A-Fa-f])\)?[.:]?$")
_LETTER_ANY_RE = re.compile(r"\(([A-F])\)")


def normalise(text: str | None) -> str | None:
    """A date answer -> `MM/DD/YYYY`; an option letter -> `(A)`; else None."""
    if not isinstance(text, str):
        return None
    m = _NUM_DATE_RE.search(text)
    if m:
        return f"{int(m.group(1)):02d}/{int(m.group(2)):02d}/{m.group(3)}"
    m = _NAME_DATE_RE.search(text)
    if m:
        return f"{_MONTH_NUM[m.group(1).lower()]:02d}/{int(m.group(2)):02d}/{m.group(3)}"
    s = text.strip()
    m = _LETTER_RE.match(s) or _LETTER_ANY_RE.search(s)
    if m:
        return f"({m.group(1).upper()})"
    return None


def _resolve(answer: str | None, options: tuple[str, ...] | list[str]) -> str | None:
    """An option letter -> its date (None when there is no such option)."""
    a = normalise(answer)
    if a is None or not a.startswith("("):
        return a
    i = ord(a[1]) - ord("A")
    if 0 <= i < len(options):
        opt = normalise(re.sub(r"^\s*\([A-Fa-f]\)\s*", "", str(options[i])))
        if opt is not None and not opt.startswith("("):
            return opt
    return None


_OPTION_RE = re.compile(r"\(([A-F])\)\s*(\d{1,2}/\d{1,2}/\d{4})")


def options_of(question: str) -> tuple[str, ...]:
    """The `(A) 12/14/1937 (B) ...` options of a question, in letter order."""
    found = _OPTION_RE.findall(question)
    out: list[str] = []
    for k, (letter, d) in enumerate(found):
        if k >= 6 or letter != "ABCDEF"[k]:
            break
        out.append(normalise(d) or d)
    return tuple(out)


# ----------------------------------------------------------- generation ---

_FIXED_HOLIDAYS = (
    ("Christmas Eve", 12, 24), ("Christmas Day", 12, 25), ("New Year's Day", 1, 1),
    ("New Year's Eve", 12, 31), ("Valentine's Day", 2, 14), ("Halloween", 10, 31),
    ("US Independence Day", 7, 4), ("Saint Patrick's Day", 3, 17), ("April Fools' Day", 4, 1),
    ("Boxing Day", 12, 26),
)  # fmt: skip
_ORDINALS = ("first", "second", "third", "fourth")
_PEOPLE = (("Jane", "she", "her"), ("John", "he", "his"), ("Mia", "she", "her"), ("Omar", "he", "his"),
           ("Lena", "she", "her"), ("Ravi", "he", "his"), ("Tom", "he", "his"), ("Ana", "she", "her"))  # fmt: skip
_EVENTS = (
    "started a new job", "moved to a new city", "bought a car", "adopted a puppy", "planted a tree",
    "finished a novel", "took a driving test", "ran a marathon", "painted the house", "visited an aunt",
    "booked a flight", "signed a lease", "joined a gym", "opened a bakery", "won a chess match",
    "sold a bike", "fixed the roof", "learned to swim",
)  # fmt: skip


def _qty(rng: random.Random, n: int) -> str:
    """A number as the question writes it: a word for small ones, sometimes."""
    return _WORD_OF[n] if n in _WORD_OF and n <= 12 and rng.random() < 0.5 else str(n)


def _units(n: int, unit: str) -> str:
    return unit if n == 1 else unit + "s"


def _random_date(rng: random.Random) -> date:
    y = rng.randint(1901, 2030)
    m = rng.randint(1, 12)
    return date(y, m, rng.randint(1, calendar.monthrange(y, m)[1]))


def _anchor(rng: random.Random, described: bool) -> tuple[str, date, str | None]:
    """(text in the question, date, description needing a step or None)."""
    if not described:
        d = _random_date(rng)
        return fmt(d), d, None
    kind = rng.random()
    y = rng.randint(1901, 2030)
    if kind < 0.4:
        d = _random_date(rng)
        mon = MONTHS[d.month - 1]
        name = mon if rng.random() < 0.5 or len(mon) <= 4 else mon[:3]
        text = f"{name} {d.day}, {d.year}"
    elif kind < 0.7:
        hname, m, dd = rng.choice(_FIXED_HOLIDAYS)
        d, text = date(y, m, dd), f"{hname} of {y}"
    else:
        k = rng.randrange(5)
        if k == 0:
            d, text = date(y, 1, 1), f"the first day of {y}"
        elif k == 1:
            d, text = date(y, 12, 31), f"the last day of {y}"
        elif k == 2:
            m = rng.randint(1, 12)
            d, text = date(y, m, 1), f"the first day of {MONTHS[m - 1]} in {y}"
        elif k == 3:
            m = rng.choice([2, 2, 2] + list(range(1, 13)))  # February, for leap years
            d, text = date(y, m, calendar.monthrange(y, m)[1]), f"the last day of {MONTHS[m - 1]} in {y}"
        else:
            q = rng.randrange(4)
            if rng.random() < 0.5:
                d, text = date(y, 3 * q + 1, 1), f"the first day of the {_ORDINALS[q]} quarter of {y}"
            else:
                m = 3 * q + 3
                d, text = date(y, m, calendar.monthrange(y, m)[1]), f"the last day of the {_ORDINALS[q]} quarter of {y}"
    return text, d, text


def _rand_offset(rng: random.Random, units: tuple[str, ...] = ("day", "day", "week", "month", "year")) -> Offset:
    unit = rng.choice(units)
    n = {"day": rng.randint(1, 30), "week": rng.randint(1, 8), "month": rng.randint(1, 12), "year": rng.randint(1, 10)}[unit]
    return Offset(n, unit, 1)


@dataclass
class _Build:
    """A chain under construction: question sentences and gold steps are
    templates over node dates ({0}, {1}, ...), filled once dates are known."""

    sentences: list[str] = field(default_factory=list)
    hops: list[Offset] = field(default_factory=list)
    names: list[list[str]] = field(default_factory=list)
    steps: list[tuple[str, int]] = field(default_factory=list)


def _step_move(subject: str, off: Offset, i: int) -> str:
    """Gold step for hop i -> i+1, e.g. `Today is 1 day after {0}, which is {1}.`"""
    return f"{subject} {off.canon()} {{{i}}}, which is {{{i + 1}}}."


class DateUnderstandingTask:
    name = FAMILY
    scripted = True

    # -- levels and generation -------------------------------------------------

    def levels(self, preset: str, subset: str) -> list[str]:
        key = (preset, subset)
        if key not in _LEVELS:
            raise TripostError(f"date_understanding: unknown preset/subset {preset!r}/{subset!r}")
        return list(_LEVELS[key])

    def generate(self, rng: random.Random, level: str) -> Problem:
        s = _parse_level(level)
        for _ in range(200):
            p = self._try_generate(rng, s, str(level))
            if p is not None:
                return p
        raise TripostError(f"date_understanding: could not generate a problem at level {level!r}")  # pragma: no cover

    def _try_generate(self, rng: random.Random, s: int, level: str) -> Problem | None:
        combos = [
            (desc, pre, tgt)
            for desc in (0, 1)
            for pre in range(0, 4)
            for tgt in (0, 1)
            if desc + pre + tgt == s and not (pre == 0 and tgt == 0 and desc == 0)
        ]
        desc, pre, tgt = rng.choice(combos)
        a_text, d0, a_desc = _anchor(rng, bool(desc))
        b = _Build()
        person, pron, poss = rng.choice(_PEOPLE)
        role = self._pre_chain(rng, b, pre, a_text, a_desc, person, pron, poss)
        nodes = [d0]
        for h in b.hops:
            if h.clamps(nodes[-1]):
                return None
            nxt = h.apply(nodes[-1])
            if nxt is None:
                return None
            nodes.append(nxt)
        today = len(nodes) - 1
        if tgt:
            off, phrase, step, name = self._target(rng, role)
            if off.clamps(nodes[-1]):
                return None
            nxt = off.apply(nodes[-1])
            if nxt is None:
                return None
            nodes.append(nxt)
            b.hops.append(off)
            b.names.append([name] if name else [])
            b.steps.append((step.format(src=f"{{{today}}}", dst=f"{{{today + 1}}}"), today + 1))
            question = f"What is the date {phrase} in MM/DD/YYYY?"
        else:
            question = "What is the date today in MM/DD/YYYY?"
        if len(set(nodes)) != len(nodes) or any(not 1800 <= d.year <= 2100 for d in nodes):
            return None
        if len(b.steps) != s:  # pragma: no cover - the templates guarantee it
            raise AssertionError(f"{len(b.steps)} steps at level {s}")
        dates = [fmt(d) for d in nodes]
        stem = " ".join([*(x.format(*dates) for x in b.sentences), question])
        answer = dates[-1]
        options = _options(stem, nodes)
        letters = "ABCDEF"
        full = stem + "\nOptions:\n" + "\n".join(f"({letters[i]}) {o}" for i, o in enumerate(options))
        steps = [(t.format(*dates), i) for t, i in b.steps]
        chain = _Chain(nodes, b.names, b.hops, a_desc, steps)
        return Problem(
            id="",
            family=FAMILY,
            question=full,
            answer=answer,
            rationale=render_rationale([t for t, _ in steps], answer),
            difficulty=level,
            options=tuple(options),
            meta=chain.to_meta(),
        )

    @staticmethod
    def _pre_chain(
        rng: random.Random, b: _Build, pre: int, a: str, desc: str | None, person: str, pron: str, poss: str
    ) -> str:
        """The sentences from the anchor to today (`pre` offsets); returns the
        anchor's role ("today", "yesterday", ...) so the target avoids
        clashing names."""

        def anchor_step(text: str) -> None:
            if desc is not None:
                b.steps.append((text, 0))

        if pre == 0:
            b.sentences.append(rng.choice([f"Today is {a}.", f"It is {a} today.", f"Today, {a}, is a day that we will never forget."]))
            b.names.append(["today"])
            anchor_step(f"Today is {desc}, so today is {{0}}.")
            return "today"
        if pre == 1:
            role = rng.choice(["yesterday", "tomorrow", "before_yesterday", "concert", "birthday", "anniversary",
                               "deadline", "like_yesterday", "exam", "trip", "moved", "event"])  # fmt: skip
            if role == "yesterday":
                b.sentences.append(f"Yesterday was {a}.")
                b.names += [["yesterday"], ["today"]]
                anchor_step(f"Yesterday was {desc}, so yesterday was {{0}}.")
                off = Offset(1, "day", 1)
            elif role == "tomorrow":
                b.sentences.append(f"Tomorrow is {a}.")
                b.names += [["tomorrow"], ["today"]]
                anchor_step(f"Tomorrow is {desc}, so tomorrow is {{0}}.")
                off = Offset(1, "day", -1)
            elif role == "before_yesterday":
                b.sentences.append(f"The day before yesterday was {a}.")
                b.names += [[], ["today"]]
                anchor_step(f"The day before yesterday was {desc}, so it was {{0}}.")
                off = Offset(2, "day", 1)
            else:
                b.names += [[], ["today"]]
                if role == "concert":
                    n = rng.randint(1, 10)
                    off = Offset(n, "day", 1)
                    b.sentences.append(
                        f"The concert was scheduled to be on {a}, but was delayed by {_qty(rng, n)} {_units(n, 'day')} to today."
                    )
                    anchor_step(f"The concert was scheduled for {desc}, which is {{0}}.")
                elif role in ("birthday", "anniversary", "like_yesterday"):
                    n = rng.randint(1, 60) if role != "like_yesterday" else rng.randint(2, 30)
                    off = Offset(n, "year", 1)
                    if role == "birthday":
                        b.sentences.append(f"{person} was born on {a}. Today is {poss} {n}-year-old birthday.")
                        anchor_step(f"{person} was born on {desc}, which is {{0}}.")
                    elif role == "anniversary":
                        other = rng.choice([p for p, _, _ in _PEOPLE if p != person])
                        b.sentences.append(f"{person} and {other} married on {a}. It is their {n}-year anniversary today.")
                        anchor_step(f"{person} and {other} married on {desc}, which is {{0}}.")
                    else:
                        b.sentences.append(
                            f"{a[0].upper() + a[1:]} is like yesterday to {person}, but that is actually {_qty(rng, n)} years ago."
                        )
                        anchor_step(f"{desc[0].upper() + desc[1:]} is {{0}}." if desc else "")
                elif role == "deadline":
                    n = rng.randint(2, 30)
                    off = Offset(n, "day", -1)
                    b.sentences.append(f"The deadline is {a}, which is {_qty(rng, n)} days away from now.")
                    anchor_step(f"The deadline is {desc}, which is {{0}}.")
                elif role == "exam":
                    n = rng.randint(1, 8)
                    off = Offset(n, "week", 1)
                    b.sentences.append(f"{person} took an exam on {a}, which was {_qty(rng, n)} {_units(n, 'week')} ago.")
                    anchor_step(f"{person} took an exam on {desc}, which is {{0}}.")
                elif role == "trip":
                    n = rng.randint(2, 30)
                    off = Offset(n, "day", -1)
                    b.sentences.append(f"{person} will leave for a trip on {a}, which is {_qty(rng, n)} days from today.")
                    anchor_step(f"{person} will leave for a trip on {desc}, which is {{0}}.")
                elif role == "moved":
                    n = rng.randint(1, 11)
                    off = Offset(n, "month", 1)
                    b.sentences.append(f"{person} moved to a new city on {a}. Today is exactly {_qty(rng, n)} {_units(n, 'month')} later.")
                    anchor_step(f"{person} moved to a new city on {desc}, which is {{0}}.")
                else:
                    event = rng.choice(_EVENTS)
                    off = _rand_offset(rng)
                    span = f"{_qty(rng, off.n)} {_units(off.n, off.unit)}"
                    b.sentences.append(f"{person} {event} on {a}. Today is {span} after the day {pron} {event}.")
                    anchor_step(f"{person} {event} on {desc}, which is {{0}}.")
            b.hops.append(off)
            b.steps.append((_step_move("Today is", off, 0), 1))
            return role
        # Two or three offsets: a story of events, then today.
        events = rng.sample(_EVENTS, pre)
        b.sentences.append(f"{person} {events[0]} on {a}.")
        anchor_step(f"{person} {events[0]} on {desc}, which is {{0}}.")
        b.names.append([])
        for i in range(1, pre):
            off = _rand_offset(rng)
            if rng.random() < 0.3:
                off = Offset(off.n, off.unit, -1)
            q = f"{_qty(rng, off.n)} {_units(off.n, off.unit)}"
            q = q[0].upper() + q[1:]
            if off.sign > 0:
                b.sentences.append(
                    rng.choice([f"{q} later, {pron} {events[i]}.", f"{pron.capitalize()} {events[i]} {q.lower()} after that."])
                )
            else:
                b.sentences.append(f"{q} before that, {pron} {events[i]}.")
            b.hops.append(off)
            b.names.append([])
            b.steps.append((_step_move(f"{person} {events[i]}", off, i - 1), i))
        off = _rand_offset(rng)
        b.sentences.append(f"Today is {_qty(rng, off.n)} {_units(off.n, off.unit)} after the day {pron} {events[-1]}.")
        b.hops.append(off)
        b.names.append(["today"])
        b.steps.append((_step_move("Today is", off, pre - 1), pre))
        return "event"

    @staticmethod
    def _target(rng: random.Random, role: str) -> tuple[Offset, str, str, str | None]:
        """(offset from today, question phrase, gold step template, node name)."""
        kinds = ["days_ago", "days_later", "days_from_today", "week_ago", "week_from", "weeks_ago", "weeks_later",
                 "month_ago", "months_ago", "months_later", "year_ago", "years_ago", "years_later",
                 "yesterday", "tomorrow", "hours"]  # fmt: skip
        if role in ("yesterday", "tomorrow"):
            kinds.remove(role)
        kind = rng.choice(kinds)
        ago = "{n} {u} ago from {{src}} is {{dst}}."
        after = "{n} {u} after {{src}} is {{dst}}."
        if kind == "yesterday":
            return Offset(1, "day", -1), "yesterday", "The day before {src} is {dst}.", "yesterday"
        if kind == "tomorrow":
            return Offset(1, "day", 1), "tomorrow", "The day after {src} is {dst}.", "tomorrow"
        if kind == "hours":
            sign = rng.choice([1, 1, -1])
            h = rng.choice([24, 24, 48, 72])
            word = "later" if sign > 0 else "ago"
            tmpl = f"{h} hours {'after' if sign > 0 else 'before'} {{src}} is {{dst}}."
            return Offset(h // 24, "day", sign), f"{h} hours {word}", tmpl, None
        if kind in ("week_ago", "week_from", "month_ago", "year_ago"):
            unit = {"week_ago": "week", "week_from": "week", "month_ago": "month", "year_ago": "year"}[kind]
            sign = 1 if kind == "week_from" else -1
            phrase = {
                "week_ago": "one week ago from today",
                "week_from": "one week from today",
                "month_ago": "a month ago",
                "year_ago": "one year ago from today",
            }[kind]
            tmpl = (after if sign > 0 else ago).format(n=1, u=unit)
            return Offset(1, unit, sign), phrase, tmpl, None
        unit = {"days": "day", "weeks": "week", "months": "month", "years": "year"}[kind.split("_")[0]]
        n = {"day": rng.randint(2, 40), "week": rng.randint(2, 6), "month": rng.randint(2, 12), "year": rng.randint(2, 20)}[unit]
        sign = -1 if kind.endswith("ago") else 1
        word = {"ago": "ago", "later": "later", "today": "from today"}[kind.split("_")[-1]]
        phrase = f"{_qty(rng, n)} {unit}s {word}"
        tmpl = (after if sign > 0 else ago).format(n=n, u=unit + "s")
        return Offset(n, unit, sign), phrase, tmpl, None

    # -- external records -------------------------------------------------------

    def from_record(self, record: dict[str, Any]) -> Problem:
        if not isinstance(record, dict):
            raise TripostError("date_understanding record must be a JSON object")
        check_record(record)  # loosely read fields' types, and sizes
        question = record.get("question")
        if not isinstance(question, str) or not question.strip():
            raise TripostError("field 'question' must be a non-empty string")
        raw_options = record.get("options")
        if raw_options is None:
            options = options_of(question)
        elif isinstance(raw_options, list) and all(isinstance(o, str) for o in raw_options) and len(raw_options) <= 6:
            options = tuple(normalise(re.sub(r"^\s*\([A-Fa-f]\)\s*", "", o)) or o.strip() for o in raw_options)
        else:
            raise TripostError("field 'options' must be a list of at most 6 strings")
        answer = record.get("answer")
        if not isinstance(answer, str) or not answer.strip():
            raise TripostError("field 'answer' must be a non-empty string (a MM/DD/YYYY date or an option letter)")
        norm = normalise(answer)
        if norm is None:
            raise TripostError(f"answer {answer!r} is neither a MM/DD/YYYY date nor an option letter like (A)")
        resolved = _resolve(norm, options)
        if resolved is None:
            raise TripostError(f"answer {answer!r} names no option of the question (options: {len(options)})")
        if parse_date(resolved) is None:
            raise TripostError(f"answer {answer!r} is not a calendar date")
        rationale = record.get("rationale", "")
        if rationale is None:
            rationale = ""
        if not isinstance(rationale, str):
            raise TripostError("field 'rationale' must be a string")
        rid = record.get("id")
        return Problem(
            id=str(rid) if rid not in (None, "") else problem_id(FAMILY, question),
            family=FAMILY,
            question=question.strip(),
            answer=resolved,
            rationale=rationale,
            difficulty=str(record.get("difficulty", "external")),
            split=record.get("split") if record.get("split") in ("train", "val", "test") else split_of(question),
            subset=record.get("subset") if record.get("subset") in ("seen", "unseen") else "seen",
            options=options,
        )

    # -- answers ----------------------------------------------------------------

    def parse_answer(self, text: str) -> str | None:
        if not isinstance(text, str):
            return None
        parsed = parse_rationale(text)
        if parsed.final is not None:
            return normalise(parse_final_answer(parsed.final))
        if parsed.steps:
            return None  # a rationale that stops before its final response has no answer
        return normalise(parse_final_answer(text) or text)

    def check_answer(self, problem: Problem, answer: str | None) -> bool:
        got = _resolve(answer, problem.options)
        gold = _resolve(problem.answer, problem.options)
        return got is not None and got == gold

    # -- steps ------------------------------------------------------------------

    def check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        try:
            return self._check_steps(problem, rationale)
        except Exception:  # noqa: BLE001 - model output must never crash a run; the tests call _check_steps
            return StepCheck(False, 1, "", _FORM_REASON, 0, None)

    def _check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        text = rationale if isinstance(rationale, str) else ""
        parsed = parse_rationale(text)
        n = parsed.n_steps
        raw = parse_final_answer(parsed.final) if parsed.final is not None else None
        answer = _resolve(raw, problem.options) or normalise(raw)
        correct = self.check_answer(problem, answer)

        def result(step: int | None, segment: str = "", reason: str = "") -> StepCheck:
            return StepCheck(correct, step, segment, reason, n, answer)

        gold = _resolve(problem.answer, problem.options) or problem.answer
        chain = _Chain.from_meta(problem.meta)
        checker: _Checker | None = None
        if chain is not None:
            if n == 0:
                return result(1, _head(parsed.final or ""), "the rationale has no numbered steps")
            checker = _Checker(chain)
            for k, (num, step) in enumerate(zip(parsed.numbers, parsed.steps), start=1):
                if num != k:
                    return result(k, _head(step), f"this step is numbered ({num}) but should be ({k})")
                err = checker.step(step)
                if err is not None:
                    return result(k, err.segment, err.reason)
        if parsed.final is None:
            return result(n + 1, "", "the final response is missing")
        if answer is None:
            return result(n + 1, _head(parsed.final), 'the final response should say "So the answer is MM/DD/YYYY."')
        if not correct:
            seg = raw if raw and raw in parsed.final else _head(parsed.final)
            if chain is not None and checker is not None and checker.state == len(chain.hops):
                return result(n + 1, seg, f"the steps found {gold}")
            return result(n + 1, seg, f"the date the question asks for is {gold}")
        return result(None)

    def continue_rationale(self, problem: Problem, kept_steps: list[str]) -> tuple[list[str], str]:
        chain = _Chain.from_meta(problem.meta)
        if chain is None or not chain.steps:
            raise TripostError(
                f"the scripted teacher can only improve generated date_understanding problems (problem {problem.id} has no chain)"
            )
        checker = _Checker(chain)
        for step in kept_steps:
            # Kept steps are the correct prefix of an attempt; should one be
            # wrong anyway, carry on from the state the right ones reached.
            if checker.step(step) is not None:
                break
        out = [t for t, node in chain.steps if node > checker.state or (node == 0 and checker.steps_done == 0)]
        return out, fmt(chain.nodes[-1])

    def corrupt(self, problem: Problem, step: int, rng: random.Random) -> str:
        text = problem.rationale
        parsed = parse_rationale(text)
        n = parsed.n_steps
        if not 1 <= step <= n + 1:
            raise TripostError(f"date_understanding: step {step} is out of range 1..{n + 1}")
        if step == n + 1:
            prefix = text[: parsed.final_offset] if parsed.final_offset is not None else text
            if prefix and not prefix.endswith("\n"):
                prefix += "\n"
            for ans in _wrong_answers(problem, rng):
                out = prefix + final_line(ans)
                if self.check_steps(problem, out).first_error_step == step:
                    return out
            return prefix + final_line("unknown")
        start = parsed.offsets[step - 1]
        end = parsed.offset_of(step + 1)
        body = text[start:end]
        tail = body[len(body.rstrip("\r\n")) :] or "\n"
        for new in _wrong_steps(parsed.steps[step - 1], rng) + ["I am not sure what comes next."]:
            out = text[:start] + f"({step}) {new}" + tail + text[end:]
            if self.check_steps(problem, out).first_error_step == step:
                return out
        raise AssertionError("unreachable: a step with no date is always flagged")


# ---------------------------------------------------------------- helpers ---


def _parse_level(level: str) -> int:
    if not re.fullmatch(r"\d", str(level)) or not 1 <= int(level) <= _MAX_LEVEL:
        raise TripostError(f"date_understanding: unknown level {level!r} (expected a number of steps, 1-4)")
    return int(level)


def _near(d: date) -> list[date]:
    """Plausible wrong dates near `d`: off by a day, a week, a month, a year,
    a decade, or with month and day swapped."""
    out: list[date | None] = [
        Offset(1, "day", 1).apply(d), Offset(1, "day", -1).apply(d),
        Offset(1, "month", 1).apply(d), Offset(1, "month", -1).apply(d),
        Offset(1, "year", 1).apply(d), Offset(1, "year", -1).apply(d),
        Offset(7, "day", 1).apply(d), Offset(7, "day", -1).apply(d),
        Offset(10, "year", 1).apply(d), Offset(89, "year", 1).apply(d),
        _mkdate(d.year, d.day, d.month) if d.day <= 12 else None,
    ]  # fmt: skip
    seen: list[date] = []
    for x in out:
        if x is not None and x != d and x not in seen:
            seen.append(x)
    return seen


def _options(stem: str, nodes: list[date]) -> list[str]:
    """4-6 options, one correct. Seeded by the question stem, so a stem has
    exactly one full question (and one split)."""
    rng = random.Random("date_understanding-options|" + stem)
    answer = nodes[-1]
    pool = _near(answer) + [d for d in nodes[:-1] if d not in _near(answer)]
    k = rng.choice([4, 5, 6]) - 1
    picks = rng.sample(pool, min(k, len(pool)))
    opts = [fmt(d) for d in picks] + [fmt(answer)]
    rng.shuffle(opts)
    return opts


def _wrong_answers(problem: Problem, rng: random.Random) -> list[str]:
    gold = _resolve(problem.answer, problem.options) or problem.answer
    out = [o for o in problem.options if o != gold]
    rng.shuffle(out)
    d = parse_date(gold)
    if d is not None:
        out += [fmt(x) for x in _near(d)]
    letters = [f"({'ABCDEF'[i]})" for i, o in enumerate(problem.options) if o != gold]
    if letters and rng.random() < 0.3:
        out.insert(0, rng.choice(letters))
    return out


def _wrong_steps(step: str, rng: random.Random) -> list[str]:
    """One-claim mistakes in a gold step: a wrong result, a wrong starting
    date, a wrong number of days, a flipped direction; in random order."""
    claims = _find_dates(step)
    offsets = _find_offsets(step)
    out: list[str] = []
    if claims:
        last = claims[-1]
        if last.value is not None:
            for w in rng.sample(_near(last.value), 3):
                out.append(step[: last.start] + fmt(w) + step[last.end :])
    if len(claims) >= 2 and claims[0].value is not None:
        first = claims[0]
        w = rng.choice(_near(first.value))
        out.append(step[: first.start] + fmt(w) + step[first.end :])
    for o in offsets:
        m = re.search(r"\d+", step[o.start : o.end])
        if m:
            a, b = o.start + m.start(), o.start + m.end()
            n = int(m.group(0))
            out.append(step[:a] + str(n + rng.choice([1, 2, -1] if n > 1 else [1, 2])) + step[b:])
        flip = {"after": "before", "before": "after", "ago": "later"}
        for word, other in flip.items():
            m = re.search(rf"\b{word}\b", step[o.start : o.end])
            if m:
                a, b = o.start + m.start(), o.start + m.end()
                out.append(step[:a] + other + step[b:])
                break
    rng.shuffle(out)
    return out


__all__ = ["DateUnderstandingTask", "Offset", "add_months", "fmt", "normalise", "options_of", "parse_date"]
