"""The date step checker: every date a step writes and every move it states
is bound to what it moves from and to, and judged against the problem's
chain of dates (`Chain`, from the problem's meta). A date that starts a step
must already be known, a computed date must be its source moved by the
stated offset, and the date a step ends on must be on the chain. Steps may
combine moves or say them in other words."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from tripost.tasks.date_understanding.claims import DateClaim, OffsetClaim, find_dates, find_offsets, head
from tripost.tasks.date_understanding.dates import Offset, fmt, parse_date
from tripost.tasks.family import FORM_REASON, StepError


@dataclass
class Chain:
    """The structured view of a generated problem (`Problem.meta`)."""

    nodes: list[date]
    names: list[list[str]]
    hops: list[Offset]
    anchor_desc: str | None
    steps: list[tuple[str, int]]  # gold step text, node it establishes

    @classmethod
    def from_meta(cls, meta: Any) -> "Chain | None":
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


class Checker:
    """Replays a rationale step by step against the chain of a problem."""

    def __init__(self, chain: Chain):
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

    def _named(self, text: str, window_start: int, claim: DateClaim) -> tuple[str, date] | None:
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

    def _name_error(self, text: str, window_start: int, claim: DateClaim) -> StepError | None:
        named = self._named(text, window_start, claim)
        if named is not None and named[1] != claim.value:
            return StepError(claim.text, f"{named[0]} is {fmt(named[1])}")
        return None

    # -- one step --------------------------------------------------------------

    def step(self, text: str) -> StepError | None:
        claims = find_dates(text)
        if not claims:
            return StepError(head(text), FORM_REASON)
        for c in claims:
            if c.value is None:
                return StepError(c.text, f"{c.text} is not a valid date")
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
                    return StepError(c.text, f"{named[0]} is {fmt(named[1])}")
                if named is None:
                    return StepError(c.text, self._start_reason(d) if i == 0 else self._next_reason())
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
                    return StepError(off.segment, f"{fmt(src)} is already the date the question asks for")
            return StepError(last.text, self._next_reason())
        self.known = local
        reached = [self.index[c.value] for c in claims if c.value in self.index]
        self.state = max([self.state, *reached])
        self.steps_done += 1
        return None

    def _check_move(self, src: date, off: OffsetClaim, c: DateClaim) -> StepError | None:
        result = off.offset.apply(src)
        if result == c.value:
            return None
        i = self.index.get(src)
        if i is not None and i < len(self.chain.hops) and c.value == self.chain.nodes[i + 1]:
            # The date is the right one: the offset is what is wrong.
            return self._wrong_offset(off, src, i)
        if result is None:
            return StepError(c.text, f"{off.offset.canon()} {fmt(src)} is not a date")
        return StepError(c.text, f"{off.offset.canon()} {fmt(src)} is {fmt(result)}")

    def _wrong_offset(self, off: OffsetClaim, src: date, i: int) -> StepError:
        need = self.chain.hops[i].canon()
        return StepError(off.segment, f"the question calls for {need} {fmt(src)}, not {off.offset.canon()}")

    @staticmethod
    def _bind(text: str, claims: list[DateClaim]) -> dict[int, list[tuple[int | None, OffsetClaim]]]:
        """Which offset moves which date to which: target index -> [(source
        index or None for 'the date found so far', offset)]."""
        offsets = find_offsets(text)
        bindings: dict[int, list[tuple[int | None, OffsetClaim]]] = {}
        sources: set[int] = set()
        rest: list[OffsetClaim] = []
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
