"""The logical-deduction step checker.

A quoted sentence must be one of the puzzle's statements (in any equivalent
wording); every unquoted claim must be true and must follow from the quoted
statements, the restated clues and what earlier steps claimed. Claims are
facts from then on; quotes are citations for their own step only. So any
valid order of deductions passes, and a lucky guess is still flagged.
`Checker.finish` writes the gold steps from any state.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from tripost.tasks.family import FORM_REASON, StepError
from tripost.tasks.logical_deduction.puzzle import Puzzle
from tripost.tasks.logical_deduction.reader import END_DIRS, START_DIRS, Claim
from tripost.tasks.logical_deduction.scenes import LETTERS, NUMBER_WORDS, lower_the


@dataclass
class State:
    """What the steps so far have established: the set of orders consistent
    with every claim made, whether the full order was stated, and which
    options were shown true."""

    orders: int
    order_done: bool = False
    true_options: set[int] = field(default_factory=set)


QUOTE_RE = re.compile(r'"([^"]*)"|“([^”]*)”')
OPTION_HEAD_RE = re.compile(r"\s*options?\b", re.IGNORECASE)
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


def parse_option_step(text: str) -> _OptionStep | None:
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


ORDER_HEAD_RE = re.compile(r"\border\s+from\b", re.IGNORECASE)
# Direction names have at most three words; bounded groups and a greedy list
# keep matching linear on long model output.
ORDER_RE = re.compile(
    r"order\s+from\s+(?:the\s+)?(?P<a>[A-Za-z]+(?:[ -][A-Za-z]+){0,2}?)\s+to\s+(?:the\s+)?(?P<b>[A-Za-z]+(?:[ -][A-Za-z]+){0,2}?)"
    r"(?:\s+(?:is|was|would\s+be))?\s*:(?P<list>.*)",
    re.IGNORECASE,
)


def snippet(text: str, limit: int = 60) -> str:
    """A short leading piece of a text, cut at a word boundary (verbatim)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit]


def blank_quotes(text: str) -> str:
    return QUOTE_RE.sub(lambda m: " " * len(m.group(0)), text)


class Checker:
    def __init__(self, pz: Puzzle):
        self.pz = pz
        self.reader = pz.reader
        self.sol = pz.sol_mask
        self.clue_keys = {c.key: i for i, c in enumerate(pz.clues)}

    def step(self, text: str, st: State) -> StepError | None:
        """Check one step against the state; on success update the state."""
        if OPTION_HEAD_RE.match(text):
            return self._option(text, st)
        if ORDER_HEAD_RE.search(text):
            return self._order(text, st)
        return self._deduction(text, st)

    # -- deductions -----------------------------------------------------------
    def _deduction(self, text: str, st: State) -> StepError | None:
        pz = self.pz
        premise = st.orders
        cited: list[int] = []
        quotes = list(QUOTE_RE.finditer(text))
        for q in quotes:
            content = q.group(1) if q.group(1) is not None else q.group(2)
            key = self.reader.statement(content)
            if key not in self.clue_keys:
                said = snippet(content, 80)
                return StepError(said or q.group(0), f'the puzzle does not say "{said.rstrip(".")}"')
            cited.append(self.clue_keys[key])
            premise &= pz.mask(key)
        claims = self.reader.claims(blank_quotes(text))
        if not claims and not quotes:
            return StepError(snippet(text), FORM_REASON)
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
                    return StepError(segment, err)
            premise &= pz.mask(c.key)
            facts &= pz.mask(c.key)
        st.orders = facts
        return None

    def _judge(self, c: Claim, premise: int, known: int, cited: list[int]) -> str | None:
        """None when the claim is true and follows from the premise, else why not."""
        pz, sp = self.pz, self.pz.space
        if c.b is None or (c.kind != "before" and not 1 <= c.b <= pz.n):
            return f"there are only {NUMBER_WORDS.get(pz.n, pz.n)} {pz.scene.noun}"
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

    def _why_false(self, c: Claim, m: int, known: int, cited: list[int]) -> str:
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
    def _order(self, text: str, st: State) -> StepError | None:
        pz, sp = self.pz, self.pz.space
        m = ORDER_RE.search(text)
        if not m:
            return StepError(snippet(text), FORM_REASON)
        a = " ".join(m.group("a").lower().replace("-", " ").split())
        b = " ".join(m.group("b").lower().replace("-", " ").split())
        if a in START_DIRS and b in END_DIRS:
            forward = True
        elif a in END_DIRS and b in START_DIRS:
            forward = False
        else:
            return StepError(snippet(m.group(0), 40), FORM_REASON)
        listed = m.group("list").strip().rstrip(".").strip()
        items = [re.sub(r"^(?:and\s+)?(?:the\s+)?", "", s.strip(), flags=re.IGNORECASE).strip() for s in re.split(r",|\s+and\s+", listed)]
        items = [s for s in items if s]
        idx: list[int] = []
        for item in items:
            o = self.reader.index(item)
            if o is None:
                return StepError(item, f'"{item}" is not one of the {pz.scene.noun}')
            idx.append(o)
        if sorted(idx) != list(range(pz.n)):
            return StepError(listed, f"the order must name each of the {NUMBER_WORDS.get(pz.n, pz.n)} {pz.scene.noun} once")
        for rank, o in enumerate(idx):
            p = rank + 1 if forward else pz.n - rank
            if pz.solution[o] != p:
                return StepError(items[rank], f"in fact {pz.claim_text(o, pz.solution[o])}")
        for item, o in zip(items, idx):
            rest = st.orders & (sp.full ^ sp.at[o][pz.solution[o]])
            if rest:
                return StepError(item, f"nothing so far rules out {pz.being(o, sp.decode(rest)[o])}")
        st.orders &= self.sol
        st.order_done = True
        return None

    # -- an option -------------------------------------------------------------
    def _option(self, text: str, st: State) -> StepError | None:
        pz, sp = self.pz, self.pz.space
        m = parse_option_step(text)
        if m is None:
            return StepError(snippet(text), FORM_REASON)
        idx = LETTERS.find(m.letter.upper())
        if not 0 <= idx < len(pz.options):
            return StepError(m.head, f"the options only go from (A) to ({LETTERS[len(pz.options) - 1]})")
        stmt = m.stmt
        claims = [c for c in self.reader.claims(stmt) if c.kind == "at"]
        if not claims:
            return StepError(stmt.strip(), FORM_REASON)
        o, p = pz.options[idx]
        if (claims[0].a, claims[0].b) != (o, p):
            return StepError(stmt.strip().strip("\"“”").strip(), f'option ({LETTERS[idx]}) says "{pz.option_texts[idx]}"')
        said_true = m.verdict.lower() in ("true", "correct", "right")
        actual = pz.solution[o] == p
        if said_true != actual:
            fact = lower_the(pz.option_texts[idx]) if actual else pz.claim_text(o, pz.solution[o])
            return StepError(m.vphrase, f"in fact {fact}")
        mask = sp.at[o][p] if said_true else sp.full ^ sp.at[o][p]
        rest = st.orders & (sp.full ^ mask)
        if rest:
            alt = sp.decode(rest)[o]
            return StepError(m.vphrase, f"nothing so far rules out {pz.being(o, alt)}")
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

    def finish(self, st: State) -> list[str]:
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
