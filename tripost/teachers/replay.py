"""`replay:LOG`: a teacher that answers from a recorded interaction log.

Each log record is a trajectory whose turn i holds a rationale and the
feedback on it, and whose turn i+1 holds the improvement of turn i (see
replay/README.md). Replay indexes

    (question, attempt)            -> feedback sentence
    (question, attempt, feedback)  -> improved rationale
    (question, sample)             -> the teacher's own attempt (a demo record
                                      made with an LLM teacher: its first turn,
                                      source "teacher-attempt", and the sample
                                      number in `guide["attempt_sample"]`)

and answers exactly those requests, with zero model calls. It can attempt
(`can_attempt`) only when the log holds such attempts; then the demo source
replays the LLM's attempts too, not the family's wrong ones. A request the
log never saw is a `TripostError` naming the problem: no silent fallback,
since a made-up answer would quietly change what gets trained on.

LOG is a log file or a folder of `*.jsonl` logs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.format import Feedback, parse_feedback, parse_rationale
from tripost.log import read_log
from tripost.tasks.base import Problem
from tripost.teachers.base import ATTEMPT_TEMPERATURE, ATTEMPT_TURN_SOURCE, AttemptReply, FeedbackReply, ImproveReply, TeacherCall


def _q(question: str) -> str:
    return " ".join(question.split())


def _t(text: str) -> str:
    return text.strip()


def _canon_feedback(text: str, rationale: str) -> str | None:
    fb = parse_feedback(text, parse_rationale(rationale).n_steps)
    return fb.render() if fb is not None else None


def log_files(path: str | Path) -> list[Path]:
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(p.glob("*.jsonl"))
        if not files:
            raise TripostError(f"replay teacher: no *.jsonl logs in folder {p}")
        return files
    if not p.is_file():
        raise TripostError(f"replay teacher: no such log {p}")
    return [p]


class ReplayTeacher:
    @classmethod
    def from_spec(cls, arg: str, **options: Any) -> "ReplayTeacher":
        """`replay:LOG` (the options are an LLM teacher's)."""
        return cls(arg)

    def __init__(self, log: str | Path):
        self.name = f"replay:{log}"
        self.files = log_files(log)
        self.model = self.files[0].name if len(self.files) == 1 else str(Path(log))
        self._feedback: dict[tuple[str, str], str] = {}
        self._improve: dict[tuple[str, str, str], str] = {}
        self._attempt: dict[tuple[str, int], str] = {}
        self.n_records = 0
        for f in self.files:
            for record in read_log(f):
                self.n_records += 1
                self._index(record.problem, record.turns, record.guide)

    @property
    def can_attempt(self) -> bool:
        """Whether the log holds attempts the teacher wrote (AttemptingTeacher)."""
        return bool(self._attempt)

    def _index(self, problem: dict, turns: list[dict], guide: dict | None = None) -> None:
        q = _q(str(problem.get("question", "")))
        sample = (guide or {}).get("attempt_sample")
        if turns and turns[0].get("source") == ATTEMPT_TURN_SOURCE and isinstance(sample, int) and isinstance(turns[0].get("rationale"), str):
            self._attempt.setdefault((q, sample), turns[0]["rationale"])
        for i, turn in enumerate(turns):
            rationale, fb = turn.get("rationale"), turn.get("feedback")
            if not isinstance(rationale, str) or not isinstance(fb, str):
                continue
            self._feedback.setdefault((q, _t(rationale)), fb)
            if i + 1 < len(turns) and isinstance(turns[i + 1].get("rationale"), str):
                improved = turns[i + 1]["rationale"]
                # Keyed both by the text as logged and by its canonical
                # rendering, which is what a caller passes back as `Feedback`.
                self._improve.setdefault((q, _t(rationale), _t(fb)), improved)
                canon = _canon_feedback(fb, rationale)
                if canon is not None:
                    self._improve.setdefault((q, _t(rationale), canon), improved)

    def _call(self, kind: str, t0: float) -> TeacherCall:
        return TeacherCall(backend="replay", model=self.model, kind=kind, latency_s=time.perf_counter() - t0)

    def _unseen(self, what: str, problem: Problem, of: str = " with this attempt") -> TripostError:
        return TripostError(
            f"replay teacher: the log ({self.model}, {self.n_records} trajectories) has no {what} for problem "
            f"{problem.id or problem.question[:60]!r}{of}; replay answers only recorded requests"
        )

    def feedback(self, problem: Problem, attempt: str) -> FeedbackReply:
        t0 = time.perf_counter()
        text = self._feedback.get((_q(problem.question), _t(attempt)))
        if text is None:
            raise self._unseen("feedback", problem)
        fb = parse_feedback(text, parse_rationale(attempt).n_steps)
        if fb is None:
            raise TripostError(f"replay teacher: the logged feedback for problem {problem.id!r} does not parse: {text[:80]!r}")
        return FeedbackReply(feedback=fb, text=text, calls=(self._call("feedback", t0),))

    def attempt(self, problem: Problem, sample: int = 0, temperature: float = ATTEMPT_TEMPERATURE) -> AttemptReply:
        """The attempt the log recorded for this problem and sample (the
        temperature is the recording's: nothing is sampled here)."""
        t0 = time.perf_counter()
        rationale = self._attempt.get((_q(problem.question), int(sample) if temperature > 0 else 0))
        if rationale is None:
            raise self._unseen("teacher attempt", problem, of=f" at sample {sample}")
        return AttemptReply(rationale=rationale, calls=(self._call("attempt", t0),))

    def improve(self, problem: Problem, attempt: str, feedback: Feedback) -> ImproveReply:
        t0 = time.perf_counter()
        if feedback.error_step is None:
            return ImproveReply(rationale=attempt, calls=(self._call("improve", t0),))
        key = (_q(problem.question), _t(attempt), feedback.render())
        rationale = self._improve.get(key)
        if rationale is None:
            raise self._unseen("improvement", problem)
        return ImproveReply(rationale=rationale, calls=(self._call("improve", t0),))
