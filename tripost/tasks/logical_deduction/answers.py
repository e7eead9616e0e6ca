"""Reading a logical-deduction answer: an option letter in any of its usual
forms, or an option's own wording."""

from __future__ import annotations

import re

from tripost.tasks.logical_deduction.scenes import LETTERS

_LETTER_RE = re.compile(r"\(?\s*([A-Za-z])\s*\)?[.:]?")
_LEAD_LETTER_RE = re.compile(r"(?:option\s*)?\(([A-Za-z])\)(?![\w])|option\s+([A-Za-z])(?![\w])", re.IGNORECASE)
ANSWER_IS_RE = re.compile(r"answer is(.*)$", re.IGNORECASE | re.DOTALL)


def normalise(answer: str | None) -> str | None:
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
    return len(a) == 3 and a[0] == "(" and a[2] == ")" and a[1] in LETTERS


def text_key(s: str) -> str:
    s = " ".join(s.lower().split()).rstrip(".").strip()
    return re.sub(r"^the ", "", s)


def letter_of(answer: str | None, options: tuple[str, ...]) -> str | None:
    a = normalise(answer)
    if a is None:
        return None
    if _is_letter(a):
        return a
    key = text_key(a)
    for i, opt in enumerate(options):
        if text_key(opt) == key:
            return f"({LETTERS[i]})"
    return None
