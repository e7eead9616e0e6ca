"""Reading a date answer: a date in any accepted form, or an option letter
resolved against the question's options."""

from __future__ import annotations

import re

from tripost.tasks.date_understanding.claims import NAME_DATE_RE, NUM_DATE_RE
from tripost.tasks.date_understanding.dates import MONTH_NUM

_LETTER_RE = re.compile(r"^\(?([A-Fa-f])\)?[.:]?$")
_LETTER_ANY_RE = re.compile(r"\(([A-F])\)")


def normalise(text: str | None) -> str | None:
    """A date answer -> `MM/DD/YYYY`; an option letter -> `(A)`; else None."""
    if not isinstance(text, str):
        return None
    m = NUM_DATE_RE.search(text)
    if m:
        return f"{int(m.group(1)):02d}/{int(m.group(2)):02d}/{m.group(3)}"
    m = NAME_DATE_RE.search(text)
    if m:
        return f"{MONTH_NUM[m.group(1).lower()]:02d}/{int(m.group(2)):02d}/{m.group(3)}"
    s = text.strip()
    m = _LETTER_RE.match(s) or _LETTER_ANY_RE.search(s)
    if m:
        return f"({m.group(1).upper()})"
    return None


def resolve(answer: str | None, options: tuple[str, ...] | list[str]) -> str | None:
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
