"""The word-sorting step checker: the procedure replayed as a state machine.

The state is the groups known so far, in order, and which of them still
hold different words. Each step's claims (letters and their numbers, the
grouping and order of a split, the final order) are judged against it.
Subparts may be sorted in any order and may skip letters their words
share, so alternative correct rationales pass; `Checker.finish` writes the
gold steps from whatever state the kept steps reached.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from tripost.tasks.family import FORM_REASON, StepError
from tripost.tasks.word_sorting.render import Read, bucket_by_letter, hence_step, letters_step, order_step, show_group
from tripost.tasks.word_sorting.words import common_prefix, letter_at, letter_reason, letter_value, ordinal, parse_ordinal


@dataclass
class Block:
    words: tuple[str, ...]
    depth: int  # its words are known to share their first `depth` letters

    @property
    def open(self) -> bool:
        return len(set(self.words)) > 1


@dataclass
class Split:
    block: int  # index into _State.blocks
    k: int
    listed: tuple[str, ...]  # the words in the order the letters step listed them


@dataclass
class _State:
    blocks: list[Block]
    split: Split | None = None
    started: bool = False
    done: bool = False

    def first_open(self) -> int | None:
        return next((i for i, b in enumerate(self.blocks) if b.open), None)


def _initial(words: list[str]) -> _State:
    return _State(blocks=[Block(tuple(words), 0)])


ITEM_RE = re.compile(r'"([^"\n]{0,64})"\s*[=:]\s*"([^"\n]{0,8})"\s*\(\s*(-?\d{1,7})\s*\)')  # 7 digits: U+10FFFF counts as 1,114,015
_FIRST_RE = re.compile(r"^(?:The|Their)\s+(?P<ordl>(?P<ord>\w+)\s+letters?)\s*(?:is|are)?\s*:\s*", re.IGNORECASE)
# A group is `[...]`; `_QGROUP` also reads a `]` inside a quoted word
# ("a]b"). `_SUBPART_RE` tries the plain form first and `ENTRY_RE` the quoted
# one, so that text the plain form read is read as before.
_QGROUP = r'\[(?:"[^"\n]*"|[^\]"\n])*\]'
_SUBPART_RE = re.compile(
    r"^(?:Now\s*,?\s+)?(?:let's\s+|let\s+us\s+|we\s+)?sort\s+(?:this|the)\s+subpart\s*(?P<group>\[[^\]]*\]|" + _QGROUP + r")\s*"
    r"by\s+looking\s+at\s+(?:their|the)\s+(?P<ordl>(?P<ord>\w+)\s+letters?)\s*:\s*",
    re.IGNORECASE,
)
ORDER_RE = re.compile(r"^We\s+now\s+have\s*:\s*", re.IGNORECASE)
HENCE_RE = re.compile(r"^(?:Hence|Thus|Therefore|So)\s*,?\s+we\s+have\s*:?\s*", re.IGNORECASE)
ENTRY_RE = re.compile(r'\(\s*(-?\d{1,7})\s*\)\s*(' + _QGROUP + r'|\[[^\]]*\]|"[^"\n]*")')
_GAP_RE = re.compile(r"^[\s,;.]*(?:and\s*)?[\s.]*$", re.IGNORECASE)
_LT_RE = re.compile(r"\s*<\s*")
_GROUP_WORD_RE = re.compile(r'\s*"([^"\n]*)"\s*')
_GROUP_SEP_RE = re.compile(r"\s*([?=,<])\s*")
_HENCE_TOKEN_RE = re.compile(r'[\s\[\]]*(?:"([^"\n]*)"|([A-Za-z]+))[\s\[\]]*')
_HENCE_SEP_RE = re.compile(r"\s*([<=])\s*")


def head(text: str, n: int = 60) -> str:
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


class Checker:
    """Replays a rationale step by step: `step` judges one step, returning None
    when it is right (and moving the state on) or what is wrong with it."""

    def __init__(self, words: list[str]):
        self.words = list(words)
        self.counts = Counter(words)
        self.state = _initial(self.words)

    # -- one step ------------------------------------------------------------

    def step(self, text: str) -> StepError | None:
        text = text.strip()
        if not text:
            return StepError("", FORM_REASON)
        st = self.state
        if st.done:
            return StepError(head(text), "the words were already put in order in an earlier step")
        m = _FIRST_RE.match(text)
        if m:
            return self._letters(text, m, whole=True)
        m = _SUBPART_RE.match(text)
        if m:
            return self._letters(text, m, whole=False)
        m = ORDER_RE.match(text)
        if m:
            return self._order(text, m.end())
        m = HENCE_RE.match(text)
        if m:
            return self._hence(text, m.end())
        return StepError(head(text), FORM_REASON)

    def _pending_split(self, text: str) -> StepError | None:
        sp = self.state.split
        if sp is None:
            return None
        return StepError(head(text, 30), f"the order by the {ordinal(sp.k)} letters has to be stated first")

    # -- "The first letter: ..." / "Now sort this subpart [...] by ... letters: ..."

    def _letters(self, text: str, m: re.Match[str], whole: bool) -> StepError | None:
        err = self._pending_split(text)
        if err:
            return err
        st = self.state
        k = parse_ordinal(m.group("ord"))
        ord_span = m.group("ordl")
        if k is None:
            return StepError(ord_span, FORM_REASON)
        if whole:
            if st.started:
                return StepError(head(text, 30), "the whole list was already split into groups")
            idx = 0
        else:
            parsed = _parse_group(m.group("group"))
            group_text = m.group("group")
            if parsed is None:
                return StepError(group_text, FORM_REASON)
            gwords = parsed[0]
            for w in gwords:
                if w not in self.counts:
                    return StepError(group_text, f'"{w}" is not in the list')
            idx = -1
            candidates = range(len(st.blocks)) if st.started else [0]
            for i in candidates:
                b = st.blocks[i]
                if Counter(b.words) == Counter(gwords) and (b.open or not st.started):
                    idx = i
                    break
            if idx < 0:
                return StepError(group_text, f"{group_text} is not one of the subparts left to sort")
        block = st.blocks[idx]
        lcp = common_prefix(block.words)
        if k <= block.depth:
            return StepError(ord_span, f"these words were already grouped by their {ordinal(block.depth)} letters")
        if k > lcp + 1:
            a, b = self._differing_pair(block.words, lcp + 1)
            return StepError(ord_span, f'"{a}" and "{b}" already differ at their {ordinal(lcp + 1)} letters')
        # The letters themselves.
        items_start = m.end()
        listed: list[str] = []
        need = Counter(block.words)
        pos = items_start
        first_item = last_item = None
        for im in ITEM_RE.finditer(text, items_start):
            gap = text[pos : im.start()]
            if not _GAP_RE.match(gap):
                return StepError(head(gap), FORM_REASON)
            pos = im.end()
            item = im.group(0)
            first_item = im.start() if first_item is None else first_item
            last_item = im.end()
            w, c, num = im.group(1), im.group(2), int(im.group(3))
            if need[w] <= 0:
                where = "this subpart" if not whole else "the list"
                reason = f'"{w}" is already listed' if w in block.words else f'"{w}" is not in {where}'
                return StepError(item, reason)
            need[w] -= 1
            true = letter_at(w, k)
            if c != true:
                if not true:
                    return StepError(item, f'"{w}" has no {ordinal(k)} letter')
                return StepError(item, f'the {ordinal(k)} letter of "{w}" is "{true}"')
            if num != letter_value(c):
                if not c:
                    return StepError(item, "a missing letter counts as 0")
                return StepError(item, letter_reason(c))
            listed.append(w)
        if first_item is None:
            return StepError(head(text[items_start:]) or head(text), FORM_REASON)
        if not _GAP_RE.match(text[pos:]):
            return StepError(head(text[pos:]), FORM_REASON)
        missing = [w for w in block.words if need[w] > 0]
        if missing:
            return StepError(text[first_item:last_item], f'the {ordinal(k)} letter of "{missing[0]}" is missing')
        st.split = Split(block=idx, k=k, listed=tuple(listed))
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

    def _order(self, text: str, start: int) -> StepError | None:
        st = self.state
        sp = st.split
        if sp is None:
            return StepError(head(text, 30), "no letters were compared before this step")
        block = st.blocks[sp.block]
        k = sp.k
        entries: list[tuple[int, list[str], str, int, int]] = []  # (number, words, text, start, end)
        pos = start
        while True:
            em = ENTRY_RE.match(text, pos)
            if not em:
                return StepError(head(text[pos:]) or head(text), FORM_REASON)
            raw = em.group(2)
            if raw.startswith("["):
                parsed = _parse_group(raw)
                if parsed is None:
                    return StepError(raw, FORM_REASON)
                gwords, seps = parsed
                for a, b, s in zip(gwords, gwords[1:], seps):
                    if s == "=" and a != b:
                        return StepError(raw, f'"{a}" and "{b}" are different words')
            else:
                gwords = [raw[1:-1]]
            entries.append((int(em.group(1)), gwords, em.group(0), em.start(), em.end()))
            pos = em.end()
            sm = _LT_RE.match(text, pos)
            if sm:
                pos = sm.end()
                continue
            if not re.fullmatch(r"[\s.]*", text[pos:]):
                return StepError(head(text[pos:]), FORM_REASON)
            break
        need = Counter(block.words)
        prev: tuple[str, tuple[int, int]] | None = None
        used: dict[str, str] = {}
        for num, gwords, etext, s, e in entries:
            for w in gwords:
                if need[w] <= 0:
                    reason = f'"{w}" is already placed' if w in block.words else f'"{w}" is not in this subpart'
                    return StepError(etext, reason)
                need[w] -= 1
            letters = [letter_at(w, k) for w in gwords]
            for w, c in zip(gwords[1:], letters[1:]):
                if c != letters[0]:
                    return StepError(etext, f'"{gwords[0]}" and "{w}" have different {ordinal(k)} letters')
            c = letters[0]
            if c in used:
                return StepError(etext, f'"{used[c]}" and "{gwords[0]}" have the same {ordinal(k)} letter')
            used[c] = gwords[0]
            if num != letter_value(c):
                if not c:
                    return StepError(etext, f'"{gwords[0]}" has no {ordinal(k)} letter, which counts as 0')
                return StepError(etext, f'the {ordinal(k)} letter of "{gwords[0]}" is "{c}" ({letter_value(c)})')
            # By the characters, not their numbers: a missing letter (0) comes
            # before "'" (-57), as in Python's string order.
            if prev is not None and prev[0] > c:
                seg = text[prev[1][0] : e]
                return StepError(seg, f"{_describe(c)} comes before {_describe(prev[0])}")
            prev = (c, (s, e))
        missing = [w for w in block.words if need[w] > 0]
        if missing:
            return StepError(head(text[start:]), f'the word "{missing[0]}" is missing')
        new_blocks = [Block(tuple(gw), k) for _, gw, _, _, _ in entries]
        st.blocks[sp.block : sp.block + 1] = new_blocks
        st.split = None
        return None

    # -- "Hence, we have "costume" < "counterpart" < "oven"."

    def _hence(self, text: str, start: int) -> StepError | None:
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
                return StepError(head(text[pos:]) or head(text), FORM_REASON)
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
                return StepError(head(text[pos:]), FORM_REASON)
            break
        i_open = st.first_open()
        if i_open is not None or not st.started:
            if not st.started:
                return StepError(head(text, 30), "the letters of the words have not been compared yet")
            group = st.blocks[i_open].words
            spans = [(s, e) for w, s, e in tokens if w in group]
            seg = text[spans[0][0] : spans[-1][1]] if spans else head(text[start:])
            return StepError(seg, f"the subpart {show_group(group)} has not been sorted yet")
        need = Counter(self.counts)
        for i, (w, s, e) in enumerate(tokens):
            if need[w] <= 0:
                reason = f'"{w}" is already placed' if w in self.counts else f'"{w}" is not in the list'
                return StepError(text[s:e], reason)
            need[w] -= 1
            if i:
                a, prev_start, _ = tokens[i - 1]
                seg = text[prev_start:e]
                if a > w:
                    return StepError(seg, f'the word "{w}" comes before "{a}"')
                if seps[i - 1] == "<" and a == w:
                    return StepError(seg, f'"{a}" and "{w}" are the same word')
                if seps[i - 1] == "=" and a != w:
                    return StepError(seg, f'"{a}" and "{w}" are different words')
        missing = [w for w in self.words if need[w] > 0]
        if missing:
            return StepError(head(text[start:]), f'the word "{missing[0]}" is missing')
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
            return f"the subpart {show_group(st.blocks[i].words)} has not been sorted yet"
        return "the steps have not yet stated the full order of the words"

    def finish(self, skip: bool, read: Read = letter_at) -> list[str]:
        """Correct steps from the current state to the end (the gold procedure).
        With a `read` that misreads a letter (corrupt.py), the procedure as a
        student who misreads it writes it, to the order that reading gives."""
        st = self.state
        out: list[str] = []
        if st.done:
            return out
        if not st.started:
            block = st.blocks[0]
            out.append(letters_step(block.words, 1, whole=True, read=read))
            st.split = Split(0, 1, block.words)
            st.started = True
        while True:
            if st.split is not None:
                sp = st.split
                buckets = bucket_by_letter(sp.listed, sp.k, read)
                out.append(order_step(buckets, sp.k, read))
                st.blocks[sp.block : sp.block + 1] = [Block(b, sp.k) for b in buckets]
                st.split = None
            i = st.first_open()
            if i is None:
                break
            block = st.blocks[i]
            k = common_prefix(block.words, read) + 1 if skip else block.depth + 1
            out.append(letters_step(block.words, k, whole=False, read=read))
            st.split = Split(i, k, block.words)
        # The groups' order: sorted(self.words) when every letter was read right.
        out.append(hence_step(self.order()))
        st.done = True
        return out

    def order(self) -> list[str]:
        """The words in the order of the groups known so far."""
        return [w for b in self.state.blocks for w in b.words]


def _describe(letter: str) -> str:
    return f'"{letter}" ({letter_value(letter)})' if letter else "a missing letter (0)"
