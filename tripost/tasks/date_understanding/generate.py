"""Date problems: a chain of dates from an anchor the question gives, to
today, to the date asked for; the question's sentences, its options and the
gold steps are templates over the chain's dates.

Difficulty = number of reasoning steps: one naming the anchor in MM/DD/YYYY
when the question does not already, one per move.
"""

from __future__ import annotations

import calendar
import random
import re
from dataclasses import dataclass, field
from datetime import date

from tripost.errors import TripostError
from tripost.format import render_rationale
from tripost.tasks.base import Problem
from tripost.tasks.date_understanding.check import Chain
from tripost.tasks.date_understanding.claims import WORD_OF
from tripost.tasks.date_understanding.dates import MONTHS, Offset, fmt, near

FAMILY = "date_understanding"
_MAX_LEVEL = 4  # steps; the generator's templates go no further

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
    return WORD_OF[n] if n in WORD_OF and n <= 12 and rng.random() < 0.5 else str(n)


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

# Roles of the one-move level whose anchor is a fixed move before today:
# role -> (question sentence, the anchor's name, anchor step, anchor -> today).
_FIXED_MOVE_ROLES = {
    "yesterday": ("Yesterday was {a}.", "yesterday", "Yesterday was {desc}, so yesterday was {{0}}.", Offset(1, "day", 1)),
    "tomorrow": ("Tomorrow is {a}.", "tomorrow", "Tomorrow is {desc}, so tomorrow is {{0}}.", Offset(1, "day", -1)),
    "before_yesterday": (
        "The day before yesterday was {a}.", None, "The day before yesterday was {desc}, so it was {{0}}.", Offset(2, "day", 1)
    ),
}
# ... and those a drawn number of units away: role -> (fewest, most, unit,
# sign of anchor -> today, question sentence, anchor step). The sentence's
# number is drawn after the count, as the question reads it.
_COUNTED_MOVE_ROLES = {
    "concert": (1, 10, "day", 1, "The concert was scheduled to be on {a}, but was delayed by {qty} {units} to today.",
                "The concert was scheduled for {desc}, which is {{0}}."),
    "deadline": (2, 30, "day", -1, "The deadline is {a}, which is {qty} days away from now.",
                 "The deadline is {desc}, which is {{0}}."),
    "exam": (1, 8, "week", 1, "{person} took an exam on {a}, which was {qty} {units} ago.",
             "{person} took an exam on {desc}, which is {{0}}."),
    "trip": (2, 30, "day", -1, "{person} will leave for a trip on {a}, which is {qty} days from today.",
             "{person} will leave for a trip on {desc}, which is {{0}}."),
    "moved": (1, 11, "month", 1, "{person} moved to a new city on {a}. Today is exactly {qty} {units} later.",
              "{person} moved to a new city on {desc}, which is {{0}}."),
}  # fmt: skip


def _moved(d: date, off: Offset) -> date | None:
    """`d` moved by `off`; None where generation steps back: off the
    calendar, or at the month-end clamp (no gold answer depends on it)."""
    return None if off.clamps(d) else off.apply(d)


def _try_generate(rng: random.Random, s: int, level: str) -> Problem | None:
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
    role = _pre_chain(rng, b, pre, a_text, a_desc, person, pron, poss)
    nodes = [d0]
    for h in b.hops:
        nxt = _moved(nodes[-1], h)
        if nxt is None:
            return None
        nodes.append(nxt)
    today = len(nodes) - 1
    if tgt:
        off, phrase, step, name = _target(rng, role)
        nxt = _moved(nodes[-1], off)
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
    chain = Chain(nodes, b.names, b.hops, a_desc, steps)
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
        if role in _FIXED_MOVE_ROLES:
            sentence, name, step, off = _FIXED_MOVE_ROLES[role]
            b.sentences.append(sentence.format(a=a))
            b.names += [[name] if name else [], ["today"]]
            anchor_step(step.format(desc=desc))
        else:
            b.names += [[], ["today"]]
            if role in _COUNTED_MOVE_ROLES:
                lo, hi, unit, sign, sentence, step = _COUNTED_MOVE_ROLES[role]
                n = rng.randint(lo, hi)
                off = Offset(n, unit, sign)
                b.sentences.append(sentence.format(a=a, person=person, qty=_qty(rng, n), units=_units(n, unit)))
                anchor_step(step.format(desc=desc, person=person))
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


def generate_problem(rng: random.Random, level: str) -> Problem:
    """A problem of `level` steps (id, split and subset are set by `sample_problems`)."""
    s = parse_level(level)
    for _ in range(200):
        p = _try_generate(rng, s, str(level))
        if p is not None:
            return p
    raise TripostError(f"date_understanding: could not generate a problem at level {level!r}")  # pragma: no cover


def parse_level(level: str) -> int:
    if not re.fullmatch(r"\d", str(level)) or not 1 <= int(level) <= _MAX_LEVEL:
        raise TripostError(f"date_understanding: unknown level {level!r} (expected a number of steps, 1-4)")
    return int(level)


def _options(stem: str, nodes: list[date]) -> list[str]:
    """4-6 options, one correct. Seeded by the question stem, so a stem has
    exactly one full question (and one split)."""
    rng = random.Random("date_understanding-options|" + stem)
    answer = nodes[-1]
    pool = near(answer) + [d for d in nodes[:-1] if d not in near(answer)]
    k = rng.choice([4, 5, 6]) - 1
    picks = rng.sample(pool, min(k, len(pool)))
    opts = [fmt(d) for d in picks] + [fmt(answer)]
    rng.shuffle(opts)
    return opts
