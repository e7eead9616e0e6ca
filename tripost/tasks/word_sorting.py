"""Word sorting, after BIG-bench's `word_sorting` task.

    Sort the following words alphabetically: List: oven costume counterpart

The gold rationale is the bucket sort of Suzgun et al.'s chain-of-thought
prompt for this task (the one TriPosT starts from, Yu et al. 2024, Table 1):
group the words by their first letter, then sort every group of two or more
different words by the next letter, until every group is settled.

    (1) The first letter: "oven"="o" (15), "costume"="c" (3), "counterpart"="c" (3).
    (2) We now have: (3) ["costume" ? "counterpart"] < (15) "oven".
    (3) Now sort this subpart ["costume" ? "counterpart"] by looking at their second letters: "costume"="o" (15), "counterpart"="o" (15).
    (4) We now have: (15) ["costume" ? "counterpart"].
    (5) Now sort this subpart ["costume" ? "counterpart"] by looking at their third letters: "costume"="s" (19), "counterpart"="u" (21).
    (6) We now have: (19) "costume" < (21) "counterpart".
    (7) Hence, we have "costume" < "counterpart" < "oven".
    (Final response) So the answer is costume counterpart oven.

A word that has run out of letters shows as `"car"="" (0)`, so a prefix
comes first ("car" < "card"). Identical words (possible in external files)
form a settled group written `["car" = "car"]`.

Real word lists hold more than letters (`shouldn't`, `o'connell`, `ph.d`), so
an external word is any token without whitespace or a double quote (the
rationale quotes words with it). The order is plain string order, Python's
`sorted`, as the BIG-bench benchmark's answers use: characters compare by
code point. The number after a character counts from "a" by code point, so
a-z keep 1-26, an apostrophe is -57 and a period -50; a missing letter stays
0 and still comes first ("it" < "it's"). The order of a split is judged on
the characters themselves, the numbers only name them.

The `small` preset (for the 135M student) uses fewer, more common words and
a shorter variant of the same procedure: a subpart is sorted at once by the
first letter at which its words differ, skipping letters they all share.

The step checker replays the procedure as a state machine (the groups known
so far, in order, and which of them still hold different words) and judges
each step's claims against it: letters and their alphabet positions, the
grouping and order of a split, and the final order. Subparts may be sorted in
any order and a subpart may skip letters its words share, so alternative
correct rationales pass; `continue_rationale` replays kept steps the same way
and finishes from the state they reached.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from tripost.errors import TripostError
from tripost.format import final_line, parse_final_answer, parse_rationale, render_rationale
from tripost.tasks.base import Problem, StepCheck
from tripost.tasks.external import MAX_RATIONALE_CHARS, check_record

QUESTION_PREFIX = "Sort the following words alphabetically: List:"
# The shipped list holds plain words; external words may hold any character
# but whitespace and '"' (see `_bad_word`).
_PLAIN_RE = re.compile(r"^[a-z]+$")

# Difficulty = number of words. TriPosT (Yu et al. 2024, Sec. 4.1) trains on
# 1-7 words and tests generalisation on 8+; the `-easy` levels of the small
# preset draw common short words and use the shorter rationale variant.
_LEVELS = {
    ("paper", "seen"): ["1", "2", "3", "4", "5", "6", "7"],
    ("paper", "unseen"): ["8", "9", "10", "11", "12"],
    ("small", "seen"): ["2-easy", "3-easy"],
    ("small", "unseen"): ["4-easy", "5-easy"],
}
_EASY_POOL = 1200  # the most common words of the list
_EASY_MAX_LEN = 8
_MAX_WORDS = 64  # external records: keeps a rationale a sane length
_MAX_WORD_CHARS = 64  # the step checker reads quoted words of up to 64 characters (_ITEM_RE)
_FORM_REASON = "this step does not follow the expected form"

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


def _parse_ordinal(text: str) -> int | None:
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


def _letter_reason(letter: str) -> str:
    if _PLAIN_RE.match(letter):
        return f'"{letter}" is letter {letter_value(letter)} of the alphabet'
    return f'"{letter}" counts as {letter_value(letter)} (its code point less that of "a", plus 1)'


def _common_prefix(words: tuple[str, ...] | list[str]) -> int:
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
    bad = [w for w in words if not _PLAIN_RE.match(w)]
    if bad or len(set(words)) != len(words):
        raise TripostError(f"word_sorting: the shipped word list is corrupt (e.g. {bad[:3]})")
    return words


@lru_cache(maxsize=1)
def _easy_words() -> tuple[str, ...]:
    return tuple(w for w in word_list()[:_EASY_POOL] if len(w) <= _EASY_MAX_LEN)


# ------------------------------------------------------------ rendering ---


def _q(word: str) -> str:
    return f'"{word}"'


def _group(words: tuple[str, ...] | list[str]) -> str:
    if len(words) == 1:
        return _q(words[0])
    sep = " = " if len(set(words)) == 1 else " ? "
    return "[" + sep.join(_q(w) for w in words) + "]"


def _items(words: tuple[str, ...] | list[str], k: int) -> str:
    return ", ".join(f'{_q(w)}="{letter_at(w, k)}" ({letter_value(letter_at(w, k))})' for w in words)


def _letters_step(words: tuple[str, ...] | list[str], k: int, whole: bool) -> str:
    if whole:
        return f"The {ordinal(k)} letter: {_items(words, k)}."
    return f"Now sort this subpart {_group(words)} by looking at their {ordinal(k)} letters: {_items(words, k)}."


def _buckets(words: tuple[str, ...] | list[str], k: int) -> list[tuple[str, ...]]:
    """Words grouped by their k-th letter, groups in string order of that
    letter (the missing letter "" first, then by code point: for a-z the
    alphabet), words inside a group in the order given."""
    by: dict[str, list[str]] = {}
    for w in words:
        by.setdefault(letter_at(w, k), []).append(w)
    return [tuple(by[c]) for c in sorted(by)]


def _order_step(buckets: list[tuple[str, ...]], k: int) -> str:
    parts = [f"({letter_value(letter_at(b[0], k))}) {_group(b)}" for b in buckets]
    return f"We now have: {' < '.join(parts)}."


def _hence_step(sorted_words: list[str]) -> str:
    out = _q(sorted_words[0])
    for a, b in zip(sorted_words, sorted_words[1:]):
        out += (" = " if a == b else " < ") + _q(b)
    return f"Hence, we have {out}."


_DECORATION = "\"'.[]"  # what an answer may wrap a plain word in: quotes, brackets, a period


def _normalise(text: str) -> str | None:
    """An answer as lower-case tokens joined by spaces. Plain words (a-z) lose
    the quotes, brackets, periods and commas around them ("Car, card." ->
    "car card"), as they always have. A token with other characters inside
    ("shouldn't", "ph.d.", "1,000") is kept whole bar `_trim`: its periods,
    apostrophes and commas may belong to the word, and `_answer_words` reads
    it against the problem's words."""
    out: list[str] = []
    for chunk in text.strip().lower().split():
        parts = [p.strip(_DECORATION) for p in re.split(r"[,;]+", chunk)]
        if all(not p or _PLAIN_RE.match(p) for p in parts):
            out += [p for p in parts if p]
        else:
            out.append(_trim(chunk))
    return " ".join(out) or None


def _trim(token: str) -> str:
    """`["ph.d.",` -> `ph.d.`: quotes (never part of a word), brackets and
    separators around it, and a period after a closing quote or bracket go.
    (A word that does end in a bracket is still found by its bare form.)"""
    prev = None
    while token != prev:
        prev = token
        token = token.strip('"[],;')
        if token.endswith(('".', '].')):
            token = token[:-1]
    return token


@dataclass(frozen=True)
class _Vocab:
    """A problem's words, and each word by its bare form (no quotes, brackets,
    periods or apostrophes at its ends) when only one word has that form."""

    words: frozenset[str]
    by_bare: dict[str, str]

    @classmethod
    def of(cls, words: list[str] | tuple[str, ...]) -> "_Vocab":
        bare: dict[str, set[str]] = {}
        for w in words:
            bare.setdefault(w.strip(_DECORATION + ",;"), set()).add(w)
        return cls(frozenset(words), {k: next(iter(v)) for k, v in bare.items() if len(v) == 1})


def _resolve(token: str, vocab: _Vocab) -> list[str]:
    """The problem word(s) an answer token stands for: itself if it is one,
    else itself without decoration around it, else its comma-separated parts,
    else the one word with its bare form; an unknown token stays and will
    not match."""
    if token in vocab.words:
        return [token]
    bare = token.strip(_DECORATION + ",;")
    if not bare:
        return []  # only quotes, brackets or separators
    for chars in ("[]", "[],;", "[],;.", "[],;.'"):
        if token.strip(chars) in vocab.words:
            return [token.strip(chars)]
    if "," in token or ";" in token:
        return [w for part in re.split(r"[,;]+", token) if part for w in _resolve(part, vocab)]
    return [vocab.by_bare.get(bare, bare)]


def _answer_words(text: str, vocab: _Vocab) -> list[str]:
    """The words an answer lists, read against the problem's words: exact for
    words with periods or apostrophes inside ("ph.d" and "ph.d." stay apart).
    A plain word with one at an end ("etc.", "'em") is known by its bare form
    when no other word of the list shares it."""
    norm = _normalise(text)
    return [w for tok in (norm.split() if norm else []) for w in _resolve(tok, vocab)]


# ------------------------------------------------------ the state machine ---


@dataclass
class _Block:
    words: tuple[str, ...]
    depth: int  # its words are known to share their first `depth` letters

    @property
    def open(self) -> bool:
        return len(set(self.words)) > 1


@dataclass
class _Split:
    block: int  # index into _State.blocks
    k: int
    listed: tuple[str, ...]  # the words in the order the letters step listed them


@dataclass
class _State:
    blocks: list[_Block]
    split: _Split | None = None
    started: bool = False
    done: bool = False

    def first_open(self) -> int | None:
        return next((i for i, b in enumerate(self.blocks) if b.open), None)


@dataclass(frozen=True)
class _Error:
    segment: str
    reason: str


def _initial(words: list[str]) -> _State:
    return _State(blocks=[_Block(tuple(words), 0)])


_ITEM_RE = re.compile(r'"([^"\n]{0,64})"\s*[=:]\s*"([^"\n]{0,8})"\s*\(\s*(-?\d{1,7})\s*\)')  # 7 digits: U+10FFFF counts as 1,114,015
_FIRST_RE = re.compile(r"^(?:The|Their)\s+(?P<ordl>(?P<ord>\w+)\s+letters?)\s*(?:is|are)?\s*:\s*", re.IGNORECASE)
# A group is `[...]`; `_QGROUP` also reads a `]` inside a quoted word
# ("a]b"). `_SUBPART_RE` tries the plain form first and `_ENTRY_RE` the quoted
# one, so that text the plain form read is read as before.
_QGROUP = r'\[(?:"[^"\n]*"|[^\]"\n])*\]'
_SUBPART_RE = re.compile(
    r"^(?:Now\s*,?\s+)?(?:let's\s+|let\s+us\s+|we\s+)?sort\s+(?:this|the)\s+subpart\s*(?P<group>\[[^\]]*\]|" + _QGROUP + r")\s*"
    r"by\s+looking\s+at\s+(?:their|the)\s+(?P<ordl>(?P<ord>\w+)\s+letters?)\s*:\s*",
    re.IGNORECASE,
)
_ORDER_RE = re.compile(r"^We\s+now\s+have\s*:\s*", re.IGNORECASE)
_HENCE_RE = re.compile(r"^(?:Hence|Thus|Therefore|So)\s*,?\s+we\s+have\s*:?\s*", re.IGNORECASE)
_ENTRY_RE = re.compile(r'\(\s*(-?\d{1,7})\s*\)\s*(' + _QGROUP + r'|\[[^\]]*\]|"[^"\n]*")')
_GAP_RE = re.compile(r"^[\s,;.]*(?:and\s*)?[\s.]*$", re.IGNORECASE)
_LT_RE = re.compile(r"\s*<\s*")
_GROUP_WORD_RE = re.compile(r'\s*"([^"\n]*)"\s*')
_GROUP_SEP_RE = re.compile(r"\s*([?=,<])\s*")
_HENCE_TOKEN_RE = re.compile(r'[\s\[\]]*(?:"([^"\n]*)"|([A-Za-z]+))[\s\[\]]*')
_HENCE_SEP_RE = re.compile(r"\s*([<=])\s*")


def _head(text: str, n: int = 60) -> str:
    """A short verbatim piece of a step to quote when the whole step is at fault."""
    t = text.strip()
    if len(t) <= n:
        return t
    cut = t.rfind(" ", 0, n)
    return t[: cut if cut > 20 else n].rstrip()


def _parse_group(text: str) -> tuple[list[str], list[str]] | None:
    """`["a" ? "b" = "c"]` -> (words, separators); None when not in that form."""
    inner = text.strip()[1:-1]
    words: list[str] = []
    seps: list[str] = []
    pos = 0
    while True:
        m = _GROUP_WORD_RE.match(inner, pos)
        if not m:
            return None
        words.append(m.group(1))
        pos = m.end()
        if pos >= len(inner):
            return words, seps
        m = _GROUP_SEP_RE.match(inner, pos)
        if not m:
            return None
        seps.append(m.group(1))
        pos = m.end()


class _Checker:
    """Replays a rationale step by step: `step` judges one step, returning None
    when it is right (and moving the state on) or what is wrong with it."""

    def __init__(self, words: list[str]):
        self.words = list(words)
        self.counts = Counter(words)
        self.state = _initial(self.words)

    # -- one step ------------------------------------------------------------

    def step(self, text: str) -> _Error | None:
        text = text.strip()
        if not text:
            return _Error("", _FORM_REASON)
        st = self.state
        if st.done:
            return _Error(_head(text), "the words were already put in order in an earlier step")
        m = _FIRST_RE.match(text)
        if m:
            return self._letters(text, m, whole=True)
        m = _SUBPART_RE.match(text)
        if m:
            return self._letters(text, m, whole=False)
        m = _ORDER_RE.match(text)
        if m:
            return self._order(text, m.end())
        m = _HENCE_RE.match(text)
        if m:
            return self._hence(text, m.end())
        return _Error(_head(text), _FORM_REASON)

    def _pending_split(self, text: str) -> _Error | None:
        sp = self.state.split
        if sp is None:
            return None
        return _Error(_head(text, 30), f"the order by the {ordinal(sp.k)} letters has to be stated first")

    # -- "The first letter: ..." / "Now sort this subpart [...] by ... letters: ..."

    def _letters(self, text: str, m: re.Match[str], whole: bool) -> _Error | None:
        err = self._pending_split(text)
        if err:
            return err
        st = self.state
        k = _parse_ordinal(m.group("ord"))
        ord_span = m.group("ordl")
        if k is None:
            return _Error(ord_span, _FORM_REASON)
        if whole:
            if st.started:
                return _Error(_head(text, 30), "the whole list was already split into groups")
            idx = 0
        else:
            parsed = _parse_group(m.group("group"))
            group_text = m.group("group")
            if parsed is None:
                return _Error(group_text, _FORM_REASON)
            gwords = parsed[0]
            for w in gwords:
                if w not in self.counts:
                    return _Error(group_text, f'"{w}" is not in the list')
            idx = -1
            candidates = range(len(st.blocks)) if st.started else [0]
            for i in candidates:
                b = st.blocks[i]
                if Counter(b.words) == Counter(gwords) and (b.open or not st.started):
                    idx = i
                    break
            if idx < 0:
                return _Error(group_text, f"{group_text} is not one of the subparts left to sort")
        block = st.blocks[idx]
        lcp = _common_prefix(block.words)
        if k <= block.depth:
            return _Error(ord_span, f"these words were already grouped by their {ordinal(block.depth)} letters")
        if k > lcp + 1:
            a, b = self._differing_pair(block.words, lcp + 1)
            return _Error(ord_span, f'"{a}" and "{b}" already differ at their {ordinal(lcp + 1)} letters')
        # The letters themselves.
        items_start = m.end()
        listed: list[str] = []
        need = Counter(block.words)
        pos = items_start
        first_item = last_item = None
        for im in _ITEM_RE.finditer(text, items_start):
            gap = text[pos : im.start()]
            if not _GAP_RE.match(gap):
                return _Error(_head(gap), _FORM_REASON)
            pos = im.end()
            item = im.group(0)
            first_item = im.start() if first_item is None else first_item
            last_item = im.end()
            w, c, num = im.group(1), im.group(2), int(im.group(3))
            if need[w] <= 0:
                where = "this subpart" if not whole else "the list"
                reason = f'"{w}" is already listed' if w in block.words else f'"{w}" is not in {where}'
                return _Error(item, reason)
            need[w] -= 1
            true = letter_at(w, k)
            if c != true:
                if not true:
                    return _Error(item, f'"{w}" has no {ordinal(k)} letter')
                return _Error(item, f'the {ordinal(k)} letter of "{w}" is "{true}"')
            if num != letter_value(c):
                if not c:
                    return _Error(item, "a missing letter counts as 0")
                return _Error(item, _letter_reason(c))
            listed.append(w)
        if first_item is None:
            return _Error(_head(text[items_start:]) or _head(text), _FORM_REASON)
        if not _GAP_RE.match(text[pos:]):
            return _Error(_head(text[pos:]), _FORM_REASON)
        missing = [w for w in block.words if need[w] > 0]
        if missing:
            return _Error(text[first_item:last_item], f'the {ordinal(k)} letter of "{missing[0]}" is missing')
        st.split = _Split(block=idx, k=k, listed=tuple(listed))
        st.started = True
        return None

    @staticmethod
    def _differing_pair(words: tuple[str, ...], k: int) -> tuple[str, str]:
        a = words[0]
        for b in words[1:]:
            if letter_at(b, k) != letter_at(a, k):
                return a, b
        return a, words[-1]

    # -- "We now have: (3) ["costume" ? "counterpart"] < (15) "oven"."

    def _order(self, text: str, start: int) -> _Error | None:
        st = self.state
        sp = st.split
        if sp is None:
            return _Error(_head(text, 30), "no letters were compared before this step")
        block = st.blocks[sp.block]
        k = sp.k
        entries: list[tuple[int, list[str], str, int, int]] = []  # (number, words, text, start, end)
        pos = start
        while True:
            em = _ENTRY_RE.match(text, pos)
            if not em:
                return _Error(_head(text[pos:]) or _head(text), _FORM_REASON)
            raw = em.group(2)
            if raw.startswith("["):
                parsed = _parse_group(raw)
                if parsed is None:
                    return _Error(raw, _FORM_REASON)
                gwords, seps = parsed
                for a, b, s in zip(gwords, gwords[1:], seps):
                    if s == "=" and a != b:
                        return _Error(raw, f'"{a}" and "{b}" are different words')
            else:
                gwords = [raw[1:-1]]
            entries.append((int(em.group(1)), gwords, em.group(0), em.start(), em.end()))
            pos = em.end()
            sm = _LT_RE.match(text, pos)
            if sm:
                pos = sm.end()
                continue
            if not re.fullmatch(r"[\s.]*", text[pos:]):
                return _Error(_head(text[pos:]), _FORM_REASON)
            break
        need = Counter(block.words)
        prev: tuple[str, tuple[int, int]] | None = None
        used: dict[str, str] = {}
        for num, gwords, etext, s, e in entries:
            for w in gwords:
                if need[w] <= 0:
                    reason = f'"{w}" is already placed' if w in block.words else f'"{w}" is not in this subpart'
                    return _Error(etext, reason)
                need[w] -= 1
            letters = [letter_at(w, k) for w in gwords]
            for w, c in zip(gwords[1:], letters[1:]):
                if c != letters[0]:
                    return _Error(etext, f'"{gwords[0]}" and "{w}" have different {ordinal(k)} letters')
            c = letters[0]
            if c in used:
                return _Error(etext, f'"{used[c]}" and "{gwords[0]}" have the same {ordinal(k)} letter')
            used[c] = gwords[0]
            if num != letter_value(c):
                if not c:
                    return _Error(etext, f'"{gwords[0]}" has no {ordinal(k)} letter, which counts as 0')
                return _Error(etext, f'the {ordinal(k)} letter of "{gwords[0]}" is "{c}" ({letter_value(c)})')
            # By the characters, not their numbers: a missing letter (0) comes
            # before "'" (-57), as in Python's string order.
            if prev is not None and prev[0] > c:
                seg = text[prev[1][0] : e]
                return _Error(seg, f"{_describe(c)} comes before {_describe(prev[0])}")
            prev = (c, (s, e))
        missing = [w for w in block.words if need[w] > 0]
        if missing:
            return _Error(_head(text[start:]), f'the word "{missing[0]}" is missing')
        new_blocks = [_Block(tuple(gw), k) for _, gw, _, _, _ in entries]
        st.blocks[sp.block : sp.block + 1] = new_blocks
        st.split = None
        return None

    # -- "Hence, we have "costume" < "counterpart" < "oven"."

    def _hence(self, text: str, start: int) -> _Error | None:
        err = self._pending_split(text)
        if err:
            return err
        st = self.state
        tokens: list[tuple[str, int, int]] = []  # (word, start, end)
        seps: list[str] = []
        pos = start
        while True:
            m = _HENCE_TOKEN_RE.match(text, pos)
            if not m:
                return _Error(_head(text[pos:]) or _head(text), _FORM_REASON)
            w = m.group(1) if m.group(1) is not None else m.group(2)
            ws = m.start(1) - 1 if m.group(1) is not None else m.start(2)
            we = m.end(1) + 1 if m.group(1) is not None else m.end(2)
            tokens.append((w, ws, we))
            pos = m.end()
            sm = _HENCE_SEP_RE.match(text, pos)
            if sm:
                seps.append(sm.group(1))
                pos = sm.end()
                continue
            if not re.fullmatch(r"[\s.\]]*", text[pos:]):
                return _Error(_head(text[pos:]), _FORM_REASON)
            break
        i_open = st.first_open()
        if i_open is not None or not st.started:
            if not st.started:
                return _Error(_head(text, 30), "the letters of the words have not been compared yet")
            group = st.blocks[i_open].words
            spans = [(s, e) for w, s, e in tokens if w in group]
            seg = text[spans[0][0] : spans[-1][1]] if spans else _head(text[start:])
            return _Error(seg, f"the subpart {_group(group)} has not been sorted yet")
        need = Counter(self.counts)
        for i, (w, s, e) in enumerate(tokens):
            if need[w] <= 0:
                reason = f'"{w}" is already placed' if w in self.counts else f'"{w}" is not in the list'
                return _Error(text[s:e], reason)
            need[w] -= 1
            if i:
                a, prev_start, _ = tokens[i - 1]
                seg = text[prev_start:e]
                if a > w:
                    return _Error(seg, f'the word "{w}" comes before "{a}"')
                if seps[i - 1] == "<" and a == w:
                    return _Error(seg, f'"{a}" and "{w}" are the same word')
                if seps[i - 1] == "=" and a != w:
                    return _Error(seg, f'"{a}" and "{w}" are different words')
        missing = [w for w in self.words if need[w] > 0]
        if missing:
            return _Error(_head(text[start:]), f'the word "{missing[0]}" is missing')
        st.done = True
        return None

    # -- what is left to do -----------------------------------------------------

    def unfinished_reason(self) -> str | None:
        st = self.state
        if st.done:
            return None
        if not st.started:
            return "the letters of the words have not been compared yet"
        if st.split is not None:
            return f"the order by the {ordinal(st.split.k)} letters has not been stated yet"
        i = st.first_open()
        if i is not None:
            return f"the subpart {_group(st.blocks[i].words)} has not been sorted yet"
        return "the steps have not yet stated the full order of the words"

    def finish(self, skip: bool) -> list[str]:
        """Correct steps from the current state to the end (the gold procedure)."""
        st = self.state
        out: list[str] = []
        if st.done:
            return out
        if not st.started:
            block = st.blocks[0]
            out.append(_letters_step(block.words, 1, whole=True))
            st.split = _Split(0, 1, block.words)
            st.started = True
        while True:
            if st.split is not None:
                sp = st.split
                buckets = _buckets(sp.listed, sp.k)
                out.append(_order_step(buckets, sp.k))
                st.blocks[sp.block : sp.block + 1] = [_Block(b, sp.k) for b in buckets]
                st.split = None
            i = st.first_open()
            if i is None:
                break
            block = st.blocks[i]
            k = _common_prefix(block.words) + 1 if skip else block.depth + 1
            out.append(_letters_step(block.words, k, whole=False))
            st.split = _Split(i, k, block.words)
        out.append(_hence_step(sorted(self.words)))
        st.done = True
        return out


def _describe(letter: str) -> str:
    return f'"{letter}" ({letter_value(letter)})' if letter else "a missing letter (0)"


# ------------------------------------------------------------------ task ---


class WordSortingTask:
    name = "word_sorting"
    scripted = True

    def levels(self, preset: str, subset: str) -> list[str]:
        if (preset, subset) not in _LEVELS:
            raise TripostError(f"word_sorting: unknown preset/subset {preset!r}/{subset!r}")
        return list(_LEVELS[(preset, subset)])

    # -- problems ---------------------------------------------------------------

    def generate(self, rng: random.Random, level: str) -> Problem:
        n, easy = _parse_level(level)
        pool = _easy_words() if easy else word_list()
        words = rng.sample(pool, n)
        return self._problem(words, level, skip=easy)

    def _problem(self, words: list[str], difficulty: str, skip: bool, rationale: str | None = None) -> Problem:
        ordered = sorted(words)
        answer = " ".join(ordered)
        if rationale is None:
            steps = _Checker(words).finish(skip)
            rationale = render_rationale(steps, answer)
        return Problem(
            id="",
            family=self.name,
            question=f"{QUESTION_PREFIX} {' '.join(words)}",
            answer=answer,
            rationale=rationale,
            difficulty=difficulty,
            meta={"words": list(words), "sorted": ordered, "variant": "skip" if skip else "full"},
        )

    def from_record(self, record: dict[str, Any]) -> Problem:
        if not isinstance(record, dict):
            raise TripostError("word_sorting record must be a JSON object")
        check_record(record)  # loosely read fields' types, and sizes
        question, answer = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise TripostError("word_sorting record: field 'question' must be a non-empty string")
        if not isinstance(answer, str) or not answer.strip():
            raise TripostError("word_sorting record: field 'answer' must be a non-empty string")
        words = parse_question(question)
        gold = " ".join(sorted(words))
        vocab = _Vocab.of(words)
        if _answer_words(answer, vocab) != _answer_words(gold, vocab):  # read both alike, as check_answer does
            raise TripostError(
                f"word_sorting record: answer {_clip(answer.strip())!r} is not the list in alphabetical order ({_clip(gold)!r})"
            )
        difficulty = record.get("difficulty")
        difficulty = str(difficulty) if difficulty not in (None, "") else str(len(words))
        p = self._problem(words, difficulty, skip=False)
        if len(p.rationale) > MAX_RATIONALE_CHARS:
            # Long words that share long prefixes are read letter by letter.
            raise TripostError(
                f"word_sorting record: the step-by-step rationale for this list is {len(p.rationale):,} characters long, "
                f"more than the {MAX_RATIONALE_CHARS:,} accepted"
            )
        given_rationale = record.get("rationale")
        if isinstance(given_rationale, str) and given_rationale.strip():
            # Keep the file's own rationale when it is right; otherwise the generated gold one.
            if self.check_steps(p, given_rationale).all_correct:
                p = self._problem(words, difficulty, skip=False, rationale=given_rationale)
        options = record.get("options") or ()
        if not isinstance(options, (list, tuple)):
            raise TripostError("word_sorting record: field 'options' must be a list")
        return Problem(
            id=str(record.get("id") or ""),
            family=self.name,
            question=question.strip(),
            answer=p.answer,
            rationale=p.rationale,
            difficulty=difficulty,
            options=tuple(str(o) for o in options),
            meta=p.meta,
        )

    # -- answers ------------------------------------------------------------------

    def parse_answer(self, text: str) -> str | None:
        if not isinstance(text, str) or not text.strip():
            return None
        try:
            parsed = parse_rationale(text)
        except (ValueError, OverflowError):
            return None
        if parsed.final is not None:
            answer = parse_final_answer(parsed.final)
            return _normalise(answer) if answer else None
        if parsed.steps:
            return None  # a rationale that never reached its final response
        m = re.search(r"the answer is\s*(.*)$", text, re.IGNORECASE | re.DOTALL)
        # One period ends the sentence, as parse_final_answer drops it: a
        # second one may belong to the last word ("... ph.d..").
        return _normalise(re.sub(r"\.\s*$", "", m.group(1) if m else text))

    def check_answer(self, problem: Problem, answer: str | None) -> bool:
        if answer is None:
            return False
        # Read against the gold words, so that "ph.d" and "ph.d." stay apart.
        vocab = _Vocab.of(problem.answer.lower().split())
        gold = _answer_words(problem.answer, vocab)
        return bool(gold) and _answer_words(answer, vocab) == gold

    # -- steps --------------------------------------------------------------------

    def check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        try:
            return self._check_steps(problem, rationale)
        except Exception:  # noqa: BLE001 - model output must never crash a run; the tests call _check_steps
            return StepCheck(False, 1, "", _FORM_REASON, 0, None)

    def _check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        text = rationale if isinstance(rationale, str) else ""
        try:
            parsed = parse_rationale(text)
        except ValueError:  # e.g. a step number too long for int()
            return StepCheck(False, 1, "", _FORM_REASON, 0, None)
        n = parsed.n_steps
        answer = None
        if parsed.final is not None:
            raw = parse_final_answer(parsed.final)
            answer = _normalise(raw) if raw else None
        correct = self.check_answer(problem, answer)

        def result(step: int | None, segment: str = "", reason: str = "") -> StepCheck:
            return StepCheck(correct, step, segment, reason, n, answer)

        checker = _Checker(_words_of(problem))
        for k, (num, step) in enumerate(zip(parsed.numbers, parsed.steps), start=1):
            if num != k:
                return result(k, _head(step), f"this step is numbered ({num}) but should be ({k})")
            err = checker.step(step)
            if err is not None:
                return result(k, err.segment, err.reason)
        if parsed.final is None:
            return result(n + 1, "", "the final response is missing")
        final_seg = parse_final_answer(parsed.final) or _head(parsed.final)
        if answer is None:
            return result(n + 1, _head(parsed.final), 'the final response should say "So the answer is ..."')
        if not correct:
            return result(n + 1, final_seg, f'the words in alphabetical order are "{problem.answer}"')
        unfinished = checker.unfinished_reason()
        if unfinished:
            return result(n + 1, final_seg, unfinished)
        return result(None)

    def continue_rationale(self, problem: Problem, kept_steps: list[str]) -> tuple[list[str], str]:
        checker = _Checker(_words_of(problem))
        for step in kept_steps:
            # Kept steps are the correct prefix of an attempt; should one be
            # wrong anyway (feedback from elsewhere), carry on from the state
            # the right ones reached.
            if checker.step(step) is not None:
                break
        skip = isinstance(problem.meta, dict) and problem.meta.get("variant") == "skip"
        return checker.finish(skip), problem.answer

    def corrupt(self, problem: Problem, step: int, rng: random.Random) -> str:
        text = problem.rationale
        parsed = parse_rationale(text)
        n = parsed.n_steps
        if not 1 <= step <= n + 1:
            raise TripostError(f"word_sorting: step {step} is out of range 1..{n + 1}")
        if step == n + 1:
            prefix = text[: parsed.final_offset] if parsed.final_offset is not None else text
            candidates = _wrong_answers(problem, rng)
            for ans in candidates:
                out = prefix + final_line(ans)
                if self.check_steps(problem, out).first_error_step == step:
                    return out
            return prefix + final_line("unknown")
        start = parsed.offsets[step - 1]
        end = parsed.offset_of(step + 1)
        body = text[start:end]
        tail = body[len(body.rstrip("\r\n")) :] or "\n"
        original = parsed.steps[step - 1]
        for new in _wrong_steps(original, problem, rng) + ["I am not sure what comes next."]:
            out = text[:start] + f"({step}) {new}" + tail + text[end:]
            if self.check_steps(problem, out).first_error_step == step:
                return out
        raise AssertionError("unreachable: a step in no known form is always flagged")


# ---------------------------------------------------------------- helpers ---


def _parse_level(level: str) -> tuple[int, bool]:
    m = re.fullmatch(r"(\d{1,3})(-easy)?", str(level))
    if not m or not 1 <= int(m.group(1)) <= _MAX_WORDS:
        raise TripostError(f"word_sorting: unknown level {level!r} (expected e.g. '3' or '3-easy')")
    return int(m.group(1)), bool(m.group(2))


def parse_question(question: str) -> list[str]:
    """The words after `List:` in BIG-bench's phrasing."""
    if "List:" not in question:
        raise TripostError("word_sorting record: the question has no 'List:' followed by words")
    tail = question.rsplit("List:", 1)[1]
    words = [w.lower() for w in tail.split()]
    if not words:
        raise TripostError("word_sorting record: the list after 'List:' is empty")
    if len(words) > _MAX_WORDS:
        raise TripostError(f"word_sorting record: {len(words)} words is more than the {_MAX_WORDS} supported")
    for w in words:
        why = _bad_word(w)
        if why:
            raise TripostError(f"word_sorting record: {_clip(w)!r} {why}")
    return words


def _bad_word(word: str) -> str | None:
    """Why a whitespace-free token cannot be sorted step by step, or None."""
    if '"' in word:
        return "has a double quote, which the rationale quotes words with"
    if not word.strip(_DECORATION + ",;"):
        return "is only the punctuation an answer puts around words"
    if not word.isprintable():
        return "has a control or invisible character"
    if len(word) > _MAX_WORD_CHARS:
        return f"is {len(word)} characters long, more than the {_MAX_WORD_CHARS} the step checker reads"
    return None


def _is_word(w: object) -> bool:
    """A word as `parse_question` gives it: one lower-case token that `_bad_word` passes."""
    return isinstance(w, str) and w.split() == [w] and w == w.lower() and _bad_word(w) is None


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _words_of(problem: Problem) -> list[str]:
    words = problem.meta.get("words") if isinstance(problem.meta, dict) else None
    if isinstance(words, list) and words and all(_is_word(w) for w in words):
        return list(words)
    return parse_question(problem.question)


def _wrong_answers(problem: Problem, rng: random.Random) -> list[str]:
    words = problem.answer.split()
    out: list[str] = []
    if len(set(words)) > 1:
        i = rng.randrange(len(words) - 1)
        while words[i] == words[i + 1]:
            i = (i + 1) % (len(words) - 1)
        swapped = words[:]
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        out.append(" ".join(swapped))
        out.append(" ".join(reversed(words)))
    if len(words) > 1:
        dropped = words[:]
        del dropped[rng.randrange(len(words))]
        out.append(" ".join(dropped))
    other = rng.choice([w for w in word_list()[:200] if w not in words])
    out.append(" ".join(sorted(words + [other])))
    return out


def _wrong_steps(step: str, problem: Problem, rng: random.Random) -> list[str]:
    """Plausible one-claim mistakes in a gold step, most natural first."""
    out: list[str] = []
    items = list(_ITEM_RE.finditer(step))
    entries = list(_ENTRY_RE.finditer(step)) if _ORDER_RE.match(step) else []
    if items and not _ORDER_RE.match(step):
        im = rng.choice(items)
        w, c, num = im.group(1), im.group(2), int(im.group(3))
        wrong_c = rng.choice([x for x in "abcdefghijklmnopqrstuvwxyz" if x != c])
        kind = rng.random()
        letter_swap = f'"{w}"="{wrong_c}" ({letter_value(wrong_c)})'
        number_off = f'"{w}"="{c}" ({num + rng.choice([-2, -1, 1, 2, 3])})'
        for rep in (letter_swap, number_off) if kind < 0.5 else (number_off, letter_swap):
            out.append(step[: im.start()] + rep + step[im.end() :])
    elif entries:
        if len(entries) >= 2:
            i = rng.randrange(len(entries) - 1)
            a, b = entries[i], entries[i + 1]
            out.append(step[: a.start()] + b.group(0) + step[a.end() : b.start()] + a.group(0) + step[b.end() :])
        e = rng.choice(entries)
        num = int(e.group(1))
        out.append(step[: e.start(1)] + str(num + rng.choice([1, 2, -1])) + step[e.end(1) :])
    elif _HENCE_RE.match(step):
        quoted = list(re.finditer(r'"([^"]*)"', step))
        pairs = [i for i in range(len(quoted) - 1) if quoted[i].group(1) != quoted[i + 1].group(1)]
        if pairs:
            i = rng.choice(pairs)
            a, b = quoted[i], quoted[i + 1]
            out.append(step[: a.start()] + b.group(0) + step[a.end() : b.start()] + a.group(0) + step[b.end() :])
        if quoted:
            q = rng.choice(quoted)
            other = rng.choice([w for w in word_list()[:200] if w not in problem.answer.split()])
            out.append(step[: q.start()] + f'"{other}"' + step[q.end() :])
    return out
