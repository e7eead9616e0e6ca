"""Problems, step checks, the Task interface, and split-safe sampling.

Every family (arithmetic, word_sorting, date_understanding, logical_deduction,
qa) implements `Task`. Sampling lives here, once, so that every family gets
the same guarantees:

- deterministic: the same (family, preset, split, subset, seed, n) gives the
  same problems;
- split-safe: a problem's split is a pure function of its canonical question
  text (a hash), so a test problem can never be generated for train, whatever
  the seed, the preset or the number asked for.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from tripost.errors import TripostError

SPLITS = ("train", "val", "test")
SUBSETS = ("seen", "unseen")
PRESETS = ("small", "paper")

# Share of the problem space that goes to each split, by hash bucket (of 1000).
SPLIT_BUCKETS = {"train": (0, 800), "val": (800, 900), "test": (900, 1000)}


def difficulty_sort_key(difficulty: str) -> tuple:
    """Orders `Problem.difficulty` labels by their numbers: "2" < "10",
    "len3-1" < "len3-2" < "len10-1" (problems come in sampled order; a table
    by difficulty reads best in the generator's own order)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", difficulty) if t)

@dataclass(frozen=True)
class Problem:
    """One problem with its gold answer and gold rationale.

    `meta` holds the family's structured view of the problem (the parsed
    expression, the word list, the solved ordering ...), JSON-serialisable, so
    step checking and the scripted teacher never re-derive it from prose.
    """

    id: str
    family: str
    question: str
    answer: str
    rationale: str
    difficulty: str
    subset: str = "seen"
    split: str = "train"
    options: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = list(self.options)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Problem":
        d = dict(d)
        d["options"] = tuple(d.get("options") or ())
        d.setdefault("meta", {})
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class StepCheck:
    """What a step checker found in a rationale.

    `first_error_step` is 1-based; `n_steps + 1` is the final response; None
    means every step and the final response are right. `correct` is whether the
    final answer is right (a rationale can reach the right answer through a
    wrong step: then `correct` is True and `first_error_step` is not None).
    """

    correct: bool
    first_error_step: int | None
    segment: str = ""
    reason: str = ""
    n_steps: int = 0
    answer: str | None = None

    @property
    def all_correct(self) -> bool:
        return self.first_error_step is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Task(Protocol):
    """A problem family."""

    name: str
    #: True when generated problems can be fully checked step by step and
    #: fixed by the scripted teacher; False for answer-only families (qa).
    scripted: bool

    def levels(self, preset: str, subset: str) -> list[str]:
        """Difficulty labels of a preset's seen or unseen subset."""
        ...

    def generate(self, rng: random.Random, level: str) -> Problem:
        """One problem at difficulty `level` (id/split/subset are set by `sample`)."""
        ...

    def from_record(self, record: dict[str, Any]) -> Problem:
        """A problem from an external JSON record (at least question and answer)."""
        ...

    def parse_answer(self, text: str) -> str | None:
        """The final answer in a rationale or a bare answer string, normalised."""
        ...

    def check_answer(self, problem: Problem, answer: str | None) -> bool:
        ...

    def check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        """Find the first wrong step of a rationale (or none)."""
        ...

    def continue_rationale(self, problem: Problem, kept_steps: list[str]) -> tuple[list[str], str]:
        """Correct steps that follow `kept_steps` (already correct steps of an
        attempt) up to the final answer: (new steps, answer). Used by the
        scripted teacher to write an improvement."""
        ...

    def corrupt(self, problem: Problem, step: int, rng: random.Random) -> str:
        """The gold rationale with step `step` made wrong (n+1 = the final
        response), such that `check_steps` flags exactly that step."""
        ...

    def wrong_attempt(self, problem: Problem, step: int, rng: random.Random) -> str:
        """A wrong attempt whose first mistake is at step `step` (n+1 = the
        final response): the gold steps before it, that step wrong, and the
        later steps worked on from the wrong result, so that `check_steps`
        flags exactly that step and the final answer is wrong too (what the
        demo source hands the teacher: tripost.sources.demo)."""
        ...


def split_of(question: str) -> str:
    """The split a question belongs to, from a hash of its canonical text."""
    canon = " ".join(question.split()).lower()
    bucket = int.from_bytes(hashlib.sha256(canon.encode()).digest()[:8], "big") % 1000
    for split, (lo, hi) in SPLIT_BUCKETS.items():
        if lo <= bucket < hi:
            return split
    raise AssertionError("unreachable")


def problem_id(family: str, question: str) -> str:
    canon = " ".join(question.split()).lower()
    return f"{family}-{hashlib.sha256(canon.encode()).hexdigest()[:12]}"


def sample_problems(
    task: Task,
    *,
    split: str = "train",
    subset: str = "seen",
    preset: str = "small",
    n: int = 10,
    seed: int = 0,
    max_tries_per_problem: int = 400,
) -> list[Problem]:
    """`n` distinct problems of one split and subset, round-robin over the
    subset's difficulty levels, deterministic in all arguments."""
    if split not in SPLITS:
        raise TripostError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if subset not in SUBSETS:
        raise TripostError(f"unknown subset {subset!r}; choose from {', '.join(SUBSETS)}")
    if preset not in PRESETS:
        raise TripostError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    levels = task.levels(preset, subset)
    if not levels:
        raise TripostError(f"{task.name}: preset {preset!r} has no {subset} levels")
    # String seeds hash deterministically in random.Random (unlike hash()).
    rng = random.Random(f"{task.name}|{preset}|{split}|{subset}|{seed}")
    out: list[Problem] = []
    seen: set[str] = set()
    for i in range(n):
        level = levels[i % len(levels)]
        for _ in range(max_tries_per_problem):
            p = task.generate(rng, level)
            key = " ".join(p.question.split()).lower()
            if key in seen or split_of(p.question) != split:
                continue
            seen.add(key)
            out.append(
                Problem(
                    id=problem_id(task.name, p.question),
                    family=task.name,
                    question=p.question,
                    answer=p.answer,
                    rationale=p.rationale,
                    difficulty=p.difficulty,
                    subset=subset,
                    split=split,
                    options=p.options,
                    meta=p.meta,
                )
            )
            break
        else:
            raise TripostError(
                f"{task.name}: could not find {n} distinct {split}/{subset} problems at level {level!r} "
                f"(found {len(out)}); the level's problem space is too small"
            )
    return out
