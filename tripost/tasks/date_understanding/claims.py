"""What a step claims: the dates it writes (MM/DD/YYYY, M/D/YYYY, month
names) and the moves it states ("10 days ago from", "the day before",
"minus 3 weeks", "24 hours later"), with their spans in the step."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from tripost.tasks.date_understanding.dates import MONTH_NUM, Offset, mkdate


@dataclass(frozen=True)
class DateClaim:
    """A date written in a step: its text, span and value (None = no such day)."""

    text: str
    start: int
    end: int
    value: date | None


NUM_DATE_RE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4})(?![\d/])")
_MONTH_ALT = "|".join(sorted(MONTH_NUM, key=len, reverse=True))
NAME_DATE_RE = re.compile(
    rf"\b({_MONTH_ALT})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})(?!\d)", re.IGNORECASE
)


def find_dates(text: str) -> list[DateClaim]:
    found: list[DateClaim] = []
    for m in NUM_DATE_RE.finditer(text):
        value = mkdate(int(m.group(3)), int(m.group(1)), int(m.group(2)))
        found.append(DateClaim(m.group(0), m.start(), m.end(), value))
    for m in NAME_DATE_RE.finditer(text):
        value = mkdate(int(m.group(3)), MONTH_NUM[m.group(1).lower()], int(m.group(2)))
        found.append(DateClaim(m.group(0), m.start(), m.end(), value))
    found.sort(key=lambda c: c.start)
    out: list[DateClaim] = []
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
WORD_OF = {v: k for k, v in _NUMBER_WORDS.items() if k not in ("a", "an")}
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
class OffsetClaim:
    offset: Offset
    start: int
    end: int
    segment: str  # what feedback quotes: "10 days ago", "the day before"
    prepositional: bool


def find_offsets(text: str) -> list[OffsetClaim]:
    out: list[OffsetClaim] = []
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
        out.append(OffsetClaim(Offset(n, unit, sign), m.start(), m.end(), seg, direction in _PREPOSITIONAL))
    for m in _SPECIAL_RE.finditer(text):
        if m.group("dir"):
            off = Offset(1, "day", -1 if m.group("dir").lower() == "before" else 1)
            out.append(OffsetClaim(off, m.start(), m.end(), m.group(0), True))
        else:
            sign = 1 if m.group("rel").lower() in ("next", "following") else -1
            out.append(OffsetClaim(Offset(1, m.group("unit").lower(), sign), m.start(), m.end(), m.group(0), False))
    out.sort(key=lambda o: o.start)
    return out


def head(text: str, words: int = 6) -> str:
    """The first few words of `text`, verbatim (a substring of it)."""
    m = re.match(r"\s*(\S+(?:\s+\S+){0,%d})" % (words - 1), text)
    return m.group(1) if m else ""
