"""Words: the shipped list, the letters the rationale reads, ordinals, and
the words of a question (any token without whitespace or a double quote)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from importlib import resources

from tripost.errors import TripostError
from tripost.tasks.family import clip

QUESTION_PREFIX = "Sort the following words alphabetically: List:"
# The shipped list holds plain words; external words may hold any character
# but whitespace and '"' (see `bad_word`).
PLAIN_RE = re.compile(r"^[a-z]+$")
DECORATION = "\"'.[]"  # what an answer may wrap a plain word in: quotes, brackets, a period

_EASY_POOL = 1200  # the most common words of the list
_EASY_MAX_LEN = 8
MAX_WORDS = 64  # external records: keeps a rationale a sane length
MAX_WORD_CHARS = 64  # the step checker reads quoted words of up to 64 characters (ITEM_RE)

_ORDINALS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
    "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
).split()
_ORDINAL_VALUE = {w: i + 1 for i, w in enumerate(_ORDINALS)}


def ordinal(n: int) -> str:
    if 1 <= n <= len(_ORDINALS):
        return _ORDINALS[n - 1]
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def parse_ordinal(text: str) -> int | None:
    t = text.lower()
    if t in _ORDINAL_VALUE:
        return _ORDINAL_VALUE[t]
    m = re.fullmatch(r"(\d{1,4})(?:st|nd|rd|th)", t)
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


def letter_at(word: str, k: int) -> str:
    """The k-th letter (1-based), or "" when the word is shorter."""
    return word[k - 1] if 1 <= k <= len(word) else ""


def letter_value(letter: str) -> int:
    """Position in the alphabet (a-z are 1-26); any other character counts
    from "a" by code point ("'" is -57). A missing letter counts as 0 and
    sorts first whatever its number: order is decided by the characters
    themselves (string order), the number only names them."""
    return ord(letter) - ord("a") + 1 if letter else 0


def letter_reason(letter: str) -> str:
    if PLAIN_RE.match(letter):
        return f'"{letter}" is letter {letter_value(letter)} of the alphabet'
    return f'"{letter}" counts as {letter_value(letter)} (its code point less that of "a", plus 1)'


def common_prefix(words: tuple[str, ...] | list[str], read: Callable[[str, int], str] | None = None) -> int:
    """How many first letters all `words` share; `read` (word, k) -> k-th
    letter reads them instead of `letter_at` (a misread letter: corrupt.py)."""
    if read is not None and read is not letter_at:
        longest, k = max(len(w) for w in words), 0
        while k < longest and len({read(w, k + 1) for w in words}) == 1:
            k += 1
        return k
    first, n = words[0], min(len(w) for w in words)
    for i in range(n):
        if any(w[i] != first[i] for w in words):
            return i
    return n


@lru_cache(maxsize=1)
def word_list() -> tuple[str, ...]:
    """The shipped word list (tripost/tasks/data/words.txt), in file order."""
    text = resources.files("tripost.tasks").joinpath("data/words.txt").read_text(encoding="utf-8")
    words = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    bad = [w for w in words if not PLAIN_RE.match(w)]
    if bad or len(set(words)) != len(words):
        raise TripostError(f"word_sorting: the shipped word list is corrupt (e.g. {bad[:3]})")
    return words


@lru_cache(maxsize=1)
def easy_words() -> tuple[str, ...]:
    return tuple(w for w in word_list()[:_EASY_POOL] if len(w) <= _EASY_MAX_LEN)


def parse_question(question: str) -> list[str]:
    """The words after `List:` in BIG-bench's phrasing."""
    if "List:" not in question:
        raise TripostError("word_sorting record: the question has no 'List:' followed by words")
    tail = question.rsplit("List:", 1)[1]
    words = [w.lower() for w in tail.split()]
    if not words:
        raise TripostError("word_sorting record: the list after 'List:' is empty")
    if len(words) > MAX_WORDS:
        raise TripostError(f"word_sorting record: {len(words)} words is more than the {MAX_WORDS} supported")
    for w in words:
        why = bad_word(w)
        if why:
            raise TripostError(f"word_sorting record: {clip(w)!r} {why}")
    return words


def bad_word(word: str) -> str | None:
    """Why a whitespace-free token cannot be sorted step by step, or None."""
    if '"' in word:
        return "has a double quote, which the rationale quotes words with"
    if not word.strip(DECORATION + ",;"):
        return "is only the punctuation an answer puts around words"
    if not word.isprintable():
        return "has a control or invisible character"
    if len(word) > MAX_WORD_CHARS:
        return f"is {len(word)} characters long, more than the {MAX_WORD_CHARS} the step checker reads"
    return None


def is_word(w: object) -> bool:
    """A word as `parse_question` gives it: one lower-case token that `bad_word` passes."""
    return isinstance(w, str) and w.split() == [w] and w == w.lower() and bad_word(w) is None
