"""The scripted teacher: knows the task, so it is always right.

What TriPosT scripted, and what it did not (Yu et al. 2024, Section 3.1, and
its code, github.com/jasonyux/TriPosT, models/verifier/ and models/rl/): only
the *feedback* module (FBK), and only for multistep arithmetic and word
sorting, where a script can find the first wrong step; date understanding
and logical deduction had an LLM's feedback. The *improvement* module (IMP)
was always an LLM (Codex in the paper) prompted with few-shot examples to
rewrite the attempt from the feedback, its output checked and thrown away when
it made no progress.

This project scripts more than that, so that the loop runs offline with no
LLM at all:

- feedback, for every generated family (arithmetic, word_sorting,
  date_understanding, logical_deduction), from the family's step checker
  (`Task.check_steps`): the first wrong step, the part quoted, the reason;
- the improvement too, which TriPosT never scripted: the attempt's text is
  kept byte-for-byte up to the first wrong step and the family writes a
  correct continuation from there to the final response
  (`Task.continue_rationale`). A scripted improvement is always right and
  always in the task's own wording, unlike an LLM's, so trajectories made with
  this teacher are cleaner than TriPosT's and say nothing about how an LLM
  improver would do; use an LLM teacher (`openai:`, `anthropic:`, `hf:`) for
  that. For `qa` problems (external question/answer files) the feedback can
  only judge the final answer, and there is no scripted improvement: an
  LLM teacher is needed.
"""

from __future__ import annotations

import time
from typing import Any

from tripost.errors import TripostError
from tripost.format import Feedback, parse_rationale, render_rationale
from tripost.tasks import get_task
from tripost.tasks.base import Problem
from tripost.teachers.base import FeedbackReply, ImproveReply, TeacherCall


class ScriptedTeacher:
    name = "scripted"

    @classmethod
    def from_spec(cls, arg: str, **options: Any) -> "ScriptedTeacher":
        """`scripted` (no argument; the options are an LLM teacher's)."""
        return cls()

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
