"""The Teacher interface and the values it returns.

A teacher reads a student's attempt and (1) points at the first wrong step
(`feedback`), (2) rewrites the attempt from that step on (`improve`), keeping
every step before it verbatim (TriPosT, Yu et al. 2024, Section 2.1).

An LLM teacher can also (3) write an attempt of its own (`attempt`,
`AttemptingTeacher`): what the authors' learn-from-demonstrations ablation
trains on (jasonyux/TriPosT runners/trainer/train_self_improve_from_demo.py,
get_wrapped_model_for_data: the LLM's first attempt sampled at temperature
1.0, :256, :283, :310, :336; its feedback and improvements at 0.0, :262-269).
The scripted teacher has no attempt call (it would only replay the gold or
the family's own mistakes); `attempting(teacher)` says which teachers do.

Replies carry the teacher calls they cost (`TeacherCall`), so the interaction
log can record backend, model, latency, usage, retries and cache hits for
every call, and a rejected LLM answer is a value with a reason, never a crash.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from tripost.format import Feedback
from tripost.tasks.base import Problem


@dataclass(frozen=True)
class TeacherCall:
    """One request a teacher made (or answered from its cache)."""

    backend: str
    model: str
    kind: str  # "feedback" | "improve" | "attempt"
    latency_s: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    cached: bool = False
    cost_usd: float = 0.0
    rejected: str | None = None  # why the answer was unusable, if it was
    batch: str = ""  # the provider batch that answered it (teacher.batch); logged only when set

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.batch:
            del out["batch"]  # a live call's record reads as it always has
        return out


@dataclass(frozen=True)
class FeedbackReply:
    feedback: Feedback | None  # None when the teacher's answer was rejected
    text: str = ""  # the feedback sentence as written (rendered for scripted)
    calls: tuple[TeacherCall, ...] = ()
    rejected: str | None = None


@dataclass(frozen=True)
class ImproveReply:
    rationale: str | None  # the improved rationale; None when rejected
    calls: tuple[TeacherCall, ...] = ()
    rejected: str | None = None


@dataclass(frozen=True)
class AttemptReply:
    rationale: str | None  # the attempt, a rationale in the task's format; None when rejected
    calls: tuple[TeacherCall, ...] = ()
    rejected: str | None = None


# The authors sample the LLM's attempts at temperature 1.0 "since we need
# multiple iterations" (train_self_improve_from_demo.py:256, and :283, :310,
# :336 for the other families), while its feedback and fixes run at 0.0.
ATTEMPT_TEMPERATURE = 1.0
# The turn source of an attempt the teacher wrote (the first turn of a demo
# record made with an LLM teacher): a reader of the log never takes it for
# the student's, and the replay teacher finds it again by it.
ATTEMPT_TURN_SOURCE = "teacher-attempt"


@runtime_checkable
class Teacher(Protocol):
    name: str

    def feedback(self, problem: Problem, attempt: str) -> FeedbackReply:
        ...

    def improve(self, problem: Problem, attempt: str, feedback: Feedback) -> ImproveReply:
        ...


@runtime_checkable
class AttemptingTeacher(Protocol):
    """A teacher that can also write an attempt at a problem: step by step, in
    the task's rationale format, sampled at `temperature`. `sample` tells the
    draws of one problem apart: the same (problem, sample, temperature) is the
    same request (a cache hit, a replayed answer), another sample is another
    call. At temperature 0 every sample is the same request (a greedy answer
    does not change). `can_attempt` is False where the call cannot be
    answered (a replay log without recorded attempts)."""

    name: str
    can_attempt: bool

    def attempt(self, problem: Problem, sample: int = 0, temperature: float = ATTEMPT_TEMPERATURE) -> AttemptReply:
        ...


def attempting(teacher: object) -> AttemptingTeacher | None:
    """`teacher` as an `AttemptingTeacher` when it can write attempts, else None
    (the scripted teacher, a replay log without attempts)."""
    if isinstance(teacher, AttemptingTeacher) and teacher.can_attempt:
        return teacher
    return None
