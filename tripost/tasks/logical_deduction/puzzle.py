"""One puzzle: its scene, objects, the one solution, the clues and options;
its wording of claims and gold steps; and questions in BIG-bench's
phrasing, rendered and parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tripost.tasks.logical_deduction.reader import Reader
from tripost.tasks.logical_deduction.scenes import (
    LETTERS,
    NOUN_SCENE,
    NUMBER_WORDS,
    PREAMBLE,
    SCENES,
    WORD_NUMBERS,
    Scene,
    at_sentence,
    canon_phrase,
    join_and,
    lower_the,
    pos_phrase,
    rel_sentence,
    subject_of,
    with_article,
)
from tripost.tasks.logical_deduction.space import Space, space_of

MIN_N, MAX_N = 3, 7  # objects in a puzzle


@dataclass(frozen=True)
class Clue:
    key: tuple[str, int, int]  # ("at", object, position) | ("before", a, b)
    text: str  # the sentence as the question writes it, with its period


@dataclass(frozen=True)
class Puzzle:
    scene: Scene
    objects: tuple[str, ...]
    solution: tuple[int, ...]  # solution[o] = position of object o
    clues: tuple[Clue, ...]
    options: tuple[tuple[int, int], ...]  # (object, position) each option claims
    option_texts: tuple[str, ...]
    answer_index: int

    @property
    def n(self) -> int:
        return len(self.objects)

    @property
    def space(self) -> Space:
        return space_of(self.n)

    @cached_property
    def sol_mask(self) -> int:
        sp = self.space
        m = sp.full
        for o, p in enumerate(self.solution):
            m &= sp.at[o][p]
        return m

    def mask(self, key: tuple[str, int, int | None]) -> int:
        kind, a, b = key
        sp = self.space
        if b is None or not 0 <= a < self.n:
            return 0
        if kind == "at":
            return sp.at[a][b] if 1 <= b <= self.n else 0
        if kind == "notat":
            return sp.full ^ sp.at[a][b] if 1 <= b <= self.n else sp.full
        if kind == "before":
            return sp.before[a][b] if 0 <= b < self.n else 0
        raise ValueError(kind)

    @cached_property
    def reader(self) -> Reader:
        return Reader(self.objects, self.n)

    # wording --------------------------------------------------------------
    def subj(self, o: int) -> str:
        return subject_of(self.scene, self.objects[o])

    def claim_text(self, o: int, p: int) -> str:
        return at_sentence(self.scene, self.objects[o], canon_phrase(self.scene, p), cap=False)

    def being(self, o: int, p: int) -> str:
        return f"{self.subj(o)} being {canon_phrase(self.scene, p)}"

    def rel_text(self, a: int, b: int) -> str:
        return rel_sentence(self.scene, self.objects[a], self.objects[b], True, cap=False)

    def order_text(self) -> str:
        names = [self.objects[o] for o in sorted(range(self.n), key=lambda o: self.solution[o])]
        return f"The order from {self.scene.start} to {self.scene.end} is: {', '.join(names)}."

    def option_step(self, idx: int) -> str:
        return f"Option ({LETTERS[idx]}) says {lower_the(self.option_texts[idx])}, which is true."

    def deduction_text(self, clue_idx: tuple[int, ...], new: list[int]) -> str:
        quotes = join_and([f'"{self.clues[i].text.rstrip(".")}"' for i in clue_idx])
        claims = join_and([self.claim_text(o, self.solution[o]) for o in sorted(new, key=lambda o: self.solution[o])])
        return f"{quotes}, so {claims}."

    # meta ------------------------------------------------------------------
    def to_meta(self) -> dict[str, Any]:
        return {
            "scene": self.scene.key,
            "objects": list(self.objects),
            "solution": list(self.solution),
            "clues": [{"kind": c.key[0], "a": c.key[1], "b": c.key[2], "text": c.text} for c in self.clues],
            "options": [[o, p] for o, p in self.options],
            "answer_index": self.answer_index,
        }

    @classmethod
    def from_meta(cls, meta: Any, option_texts: tuple[str, ...]) -> "Puzzle | None":
        """The puzzle of a problem's meta, or None when meta does not hold a
        complete, consistent, uniquely solvable one (e.g. an external record)."""
        try:
            scene = SCENES[meta["scene"]]
            objects = tuple(str(o) for o in meta["objects"])
            n = len(objects)
            if not MIN_N <= n <= MAX_N or len(set(o.lower() for o in objects)) != n:
                return None
            solution = tuple(int(p) for p in meta["solution"])
            if sorted(solution) != list(range(1, n + 1)):
                return None
            clues = []
            for c in meta["clues"]:
                kind, a, b = str(c["kind"]), int(c["a"]), int(c["b"])
                if kind not in ("at", "before"):
                    return None
                clues.append(Clue((kind, a, b), str(c["text"])))
            options = tuple((int(o), int(p)) for o, p in meta["options"])
            answer_index = int(meta["answer_index"])
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        if not 0 <= answer_index < len(options) or not all(0 <= o < n and 1 <= p <= n for o, p in options):
            return None
        texts = option_texts if len(option_texts) == len(options) else tuple(
            at_sentence(scene, objects[o], pos_phrase(scene, p, n, False), cap=True) for o, p in options
        )
        pz = cls(scene, objects, solution, tuple(clues), options, texts, answer_index)
        sp = pz.space
        orders = sp.full
        for c in pz.clues:
            m = pz.mask(c.key)
            if not m & pz.sol_mask:
                return None  # a clue the solution breaks
            orders &= m
        o, p = options[answer_index]
        if orders != pz.sol_mask or solution[o] != p:
            return None
        return pz


_OPTIONS_SPLIT_RE = re.compile(r"\bOptions:\s*", re.IGNORECASE)
_OPTION_LETTER_RE = re.compile(r"\(([A-Z])\)")
_INTRO_RE = re.compile(
    r"^(?P<lead>.*?)(?:there\s+are|there\s+were|sells)\s+(?P<num>\w+)\s+(?P<noun>[a-z]+):\s*(?P<items>[^.]+)\.\s*(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_PREAMBLE_RE = re.compile(r"^.*?within each paragraph\.\s*", re.IGNORECASE | re.DOTALL)


def render_question(scene: Scene, objects: list[str], clues: list[str], options: list[str]) -> str:
    n = len(objects)
    items = [with_article(o) if scene.article else o for o in objects]
    intro = scene.intro.format(n=NUMBER_WORDS[n], items=", ".join(items[:-1]) + ", and " + items[-1])
    lines = [f"{PREAMBLE.format(n=NUMBER_WORDS[n])} {intro} {' '.join(clues)}", "Options:"]
    lines += [f"({LETTERS[i]}) {t}" for i, t in enumerate(options)]
    return "\n".join(lines)


def parse_question(question: str) -> tuple[Puzzle | None, tuple[str, ...]]:
    """The puzzle in a question in BIG-bench's phrasing (None when it is not in
    that phrasing or has no unique solution), and the option texts found."""
    parts = _OPTIONS_SPLIT_RE.split(question, maxsplit=1)
    head, tail = parts[0], parts[1] if len(parts) > 1 else ""
    marks = list(_OPTION_LETTER_RE.finditer(tail))
    options = tuple(" ".join(tail[a.end() : b.start() if b else len(tail)].split()) for a, b in zip(marks, marks[1:] + [None]))
    paragraph = _PREAMBLE_RE.sub("", head.strip(), count=1)
    m = _INTRO_RE.match(paragraph)
    if not m or m.group("noun").lower() not in NOUN_SCENE:
        return None, options
    scene = SCENES[NOUN_SCENE[m.group("noun").lower()]]
    names = [re.sub(r"^(?:and\s+)?(?:(?:a|an|the)\s+)?", "", s.strip(), flags=re.IGNORECASE).strip() for s in re.split(r",|\s+and\s+", m.group("items"))]
    names = [s for s in names if s]
    n = len(names)
    num = m.group("num").lower()
    if not MIN_N <= n <= MAX_N or len({s.lower() for s in names}) != n or WORD_NUMBERS.get(num, int(num) if num.isdigit() and len(num) < 3 else -1) != n:
        return None, options
    reader = Reader(tuple(names), n)
    clues: list[Clue] = []
    for sentence in re.split(r"(?<=\.)\s+", m.group("rest").strip()):
        if not sentence.strip():
            continue
        key = reader.statement(sentence)
        if key is None or key[2] is None or (key[0] == "at" and not 1 <= key[2] <= n):
            return None, options
        clues.append(Clue(key, " ".join(sentence.split())))  # type: ignore[arg-type]
    opts: list[tuple[int, int]] = []
    for t in options:
        key = reader.statement(t)
        if key is None or key[0] != "at" or key[2] is None or not 1 <= key[2] <= n:
            return None, options
        opts.append((key[1], key[2]))
    sp = space_of(n)
    orders = sp.full
    for c in clues:
        orders &= (sp.at[c.key[1]][c.key[2]] if c.key[0] == "at" else sp.before[c.key[1]][c.key[2]])
    if orders.bit_count() != 1 or not opts:
        return None, options
    solution = sp.decode(orders)
    true = [i for i, (o, p) in enumerate(opts) if solution[o] == p]
    if len(true) != 1:
        return None, options
    return Puzzle(scene, tuple(names), solution, tuple(clues), tuple(opts), options, true[0]), options
