"""The Teacher interface and the values it returns.

A teacher reads a student's attempt and (1) points at the first wrong step
(`feedback`), (2) rewrites the attempt from that step on (`improve`), keeping
every step before it verbatim (TriPosT, Yu et al. 2024, Section 2.1).

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
    kind: str  # "feedback" | "improve"
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


@runtime_checkable
class Teacher(Protocol):
    name: str

    def feedback(self, problem: Problem, attempt: str) -> FeedbackReply:
        ...

    def improve(self, problem: Problem, attempt: str, feedback: Feedback) -> ImproveReply:
        ...
