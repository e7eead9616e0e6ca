"""The scripted teacher: knows the task, so it is always right.

TriPosT used scripts as the teacher for multistep arithmetic and word sorting
(Yu et al. 2024, Section 3.1); here every generated family has one. Feedback
comes from the family's step checker; an improvement keeps the attempt's text
byte-for-byte up to the first wrong step and lets the family write a correct
continuation from there to the final response.
"""

from __future__ import annotations

import time

from tripost.errors import TripostError
from tripost.format import Feedback, parse_rationale, render_rationale
from tripost.tasks import get_task
from tripost.tasks.base import Problem
from tripost.teachers.base import FeedbackReply, ImproveReply, TeacherCall


class ScriptedTeacher:
    name = "scripted"

    def feedback(self, problem: Problem, attempt: str) -> FeedbackReply:
        t0 = time.perf_counter()
        check = get_task(problem.family).check_steps(problem, attempt)
        segment = check.segment
        if check.first_error_step is not None and not segment.strip():
            # A checker with nothing to quote (no steps, no final line): quote
            # the attempt's first line, so the feedback still points somewhere.
            segment = next((ln.strip() for ln in attempt.splitlines() if ln.strip()), "")[:80]
        fb = Feedback(
            n_steps=check.n_steps,
            error_step=check.first_error_step,
            segment=segment,
            reason=check.reason,
        )
        call = TeacherCall(backend="scripted", model="scripted", kind="feedback", latency_s=time.perf_counter() - t0)
        return FeedbackReply(feedback=fb, text=fb.render(), calls=(call,))

    def improve(self, problem: Problem, attempt: str, feedback: Feedback) -> ImproveReply:
        t0 = time.perf_counter()
        task = get_task(problem.family)
        if not task.scripted and not problem.rationale:
            raise TripostError(
                f"the scripted teacher cannot improve {problem.family!r} problem {problem.id} without a gold rationale"
            )
        if feedback.error_step is None:
            return ImproveReply(rationale=attempt, calls=(self._call("improve", t0),))
        parsed = parse_rationale(attempt)
        k = feedback.error_step
        kept = list(parsed.steps[: k - 1])
        prefix = parsed.text[: parsed.offset_of(k)] if parsed.steps else ""
        if prefix and not prefix.endswith("\n"):
            prefix += "\n"
        steps, answer = task.continue_rationale(problem, kept)
        text = prefix + render_rationale(steps, answer, start=len(kept) + 1)
        return ImproveReply(rationale=text, calls=(self._call("improve", t0),))

    @staticmethod
    def _call(kind: str, t0: float) -> TeacherCall:
        return TeacherCall(backend="scripted", model="scripted", kind=kind, latency_s=time.perf_counter() - t0)
