"""TriPosT's edit loop, shared by the sources that have a teacher fix
trajectories (teacher, demo, guided with `--teacher-edits`): `edit_trajectory`
(attempt -> feedback -> improve ..., with TriPosT's progress rules), the
config of the teacher-backed collections (`CollectConfig`, also the
rejection source's) and the unavailable-streak rule (`teacher_unavailable`:
a trajectory whose teacher could not be reached, which the collection's
`Tally.log`, tripost/sources/template.py, leaves out of the log;
`TeacherUnavailable`, the error a streak of them stops with).
tripost/sources/teacher.py describes the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tripost.errors import TripostError
from tripost.format import Feedback, parse_feedback, parse_rationale, parse_trajectory
from tripost.log import CORRECT_KINDS, LogRecord, LogWriter
from tripost.settings import view
from tripost.sources.base import SourceResult
from tripost.sources.settings import CollectSettings
from tripost.tasks.base import Problem
from tripost.teachers.base import Teacher, TeacherCall
from tripost.teachers.options import TeacherOptions


@dataclass
class CollectConfig:
    """How the teacher, rejection and demo sources collect. Defaults: the
    [collect] and [teacher] keys these hold (tripost/sources/settings.py,
    tripost/teachers/options.py; `tripost.settings.view`), so a config built
    in code starts where `tripost collect` and a run start."""

    samples_per_problem: int = view(CollectSettings, "samples_per_problem")
    max_edits: int = view(CollectSettings, "max_edits")  # teacher improvements per trajectory (TriPosT: 5)
    max_passes: int = view(CollectSettings, "max_passes")  # passes over the problems
    # Stop once this many usable trajectories exist; 0 or None: no target (read as None).
    target_usable: int | None = view(CollectSettings, "target_usable")
    min_usable: int = 1  # fewer usable than this at the end: say so
    batch_size: int = view(CollectSettings, "batch_size")  # problems per student batch (tripost.student.generate)
    teacher_concurrency: int = view(TeacherOptions, "concurrency")  # trajectories edited at once
    # Trajectories in a row whose teacher could not be reached before the
    # collection stops (0: never stop). Each has already outlived its
    # requests' retries, so a few in a row mean the teacher is down or the
    # address is wrong, not a passing hiccup.
    max_unavailable: int = view(CollectSettings, "max_unavailable")
    iteration: int = 0
    seed: int = 0
    config_hash: str = ""

    def __post_init__(self) -> None:
        self.target_usable = self.target_usable or None  # the settings' 0 (TOML has no null) is no target
        for name in ("samples_per_problem", "max_passes", "batch_size", "teacher_concurrency"):
            if getattr(self, name) < 1:
                raise TripostError(f"collect: {name} must be at least 1")
        if self.max_edits < 0:
            raise TripostError("collect: max_edits must be >= 0")
        if self.max_unavailable < 0:
            raise TripostError("collect: max_unavailable must be >= 0")


# The most trajectories edited at once for a teacher that answers in rounds:
# each waits for its answers in a thread of its own.
MAX_ROUND_TRAJECTORIES = 2048


class TeacherUnavailable(TripostError):
    """The teacher could not be reached for `CollectConfig.max_unavailable`
    trajectories in a row; what was collected before stays in the log."""

    @classmethod
    def stopped(cls, teacher: Teacher, in_a_row: int, writer: LogWriter, result: SourceResult) -> "TeacherUnavailable":
        """The error a collection stops with (the teacher and demo sources): what is in the log and what to do."""
        return cls(
            f"the teacher {getattr(teacher, 'name', 'teacher')} did not answer for {in_a_row} trajectories in a row "
            f"(every request failed after its retries), so collection stopped; {writer.n_records} trajectories are in {writer.path} "
            f"({result.records_written} new). Check the teacher's server and address (OPENAI_BASE_URL, ANTHROPIC_BASE_URL), "
            f"then rerun the same command to go on"
        )


def teacher_unavailable(rec: LogRecord) -> bool:
    """The trajectory ended because the teacher could not be reached (its last
    request failed after all retries): not a finished trajectory."""
    if rec.kind != "failed" or not rec.teacher_calls or not rec.teacher_calls[-1].get("rejected"):
        return False
    # Imported here: only LLM teachers reject as "unavailable", and the verbs
    # that never reach a teacher (buffer, replay) must not load their stack.
    from tripost.teachers.prompted import UNAVAILABLE

    return rec.teacher_calls[-1]["rejected"] == UNAVAILABLE


def trajectory_record(problem: Problem, key: str, sample_index: int, turns: list[dict[str, Any]], kind: str, stop: str,
                      teacher_calls: list[dict[str, Any]], cfg: Any, student_info: dict[str, Any] | None, **fields: Any) -> LogRecord:
    """The log record of one edited trajectory (the teacher, demo and guided
    sources): right when its kind is, the run's iteration, seed and config
    hash from `cfg` (a `CollectConfig` or `GuidedConfig`); `fields` are a
    source's own (`source`, `guide`)."""
    return LogRecord(
        key=key, problem=problem.to_dict(), kind=kind, turns=turns, final_correct=kind in CORRECT_KINDS, stop_reason=stop,
        sample_index=sample_index, iteration=cfg.iteration, seed=cfg.seed, config_hash=cfg.config_hash,
        teacher_calls=teacher_calls, student=dict(student_info or {}), **fields,
    )


def _agrees(student_fb: Feedback | None, teacher_fb: Feedback) -> bool:
    return student_fb is not None and student_fb.error_step == teacher_fb.error_step


def _legit_update(prev: Feedback, prev_text: str, new_text: str) -> bool:
    """An update of an answer is one when it differs, keeps the steps before
    the first error unchanged and rewrites the wrong step (the authors'
    ParsedAttempt.made_progress, jasonyux/TriPosT models/filters/base.py:147-178;
    their further rule, that the quoted wrong part must be gone from the
    step, is left out: our families' feedback quotes parts a right step can
    repeat, a name in logical deduction, a date)."""
    if new_text.strip() == prev_text.strip():
        return False
    k = prev.error_step or 0
    a, b = parse_rationale(prev_text), parse_rationale(new_text)
    if list(a.steps[: k - 1]) != list(b.steps[: k - 1]):
        return False
    old_step = a.steps[k - 1] if 0 < k <= a.n_steps else a.final
    new_step = b.steps[k - 1] if 0 < k <= b.n_steps else b.final
    if old_step is None or new_step is None:
        return True  # nothing to compare (a step added or removed): the prefix test stands
    return old_step.strip().lower() != new_step.strip().lower()


def _feedback_progress(prev: Feedback, new: Feedback) -> bool:
    """The new feedback moved on: all correct, or a first error that is not
    earlier and not the same part of the same step (the authors'
    ParsedFeedback.made_progress, models/filters/base.py:47-62)."""
    if new.is_correct:
        return True
    if new.error_step == prev.error_step and new.segment.strip() == prev.segment.strip():
        return False
    return (new.error_step or 0) >= (prev.error_step or 0)


def edit_trajectory(problem: Problem, student_text: str, teacher: Teacher, max_edits: int) -> tuple[list[dict[str, Any]], str, str, list[TeacherCall]]:
    """Run the teacher over one student output. Returns (turns, kind, stop_reason, calls).

    An update that changes the steps before the error it fixes ends the
    trajectory as `failed` ("no progress"). An update whose new first error
    is not later than the old one is kept going, as the authors do
    (jasonyux/TriPosT models/rl/multistep_arithmetic.py:186-198, 207-217):
    if the trajectory still ends correct, only the turns up to the first one
    the teacher corrected are kept, that wrong answer with the teacher's
    critique, as a `critique` record (the fix that wandered is not taught)."""
    calls: list[TeacherCall] = []
    turns: list[dict[str, Any]] = []
    own = parse_trajectory(student_text).turns or ()
    current: str | None = None
    current_fb: Feedback | None = None

    # 1) Walk the student's own turns while its feedback agrees with the teacher.
    for i, t in enumerate(own):
        reply = teacher.feedback(problem, t.rationale)
        calls += reply.calls
        if reply.feedback is None:
            turns.append({"rationale": t.rationale, "feedback": None, "source": "student"})
            return turns, "failed", f"teacher feedback rejected: {reply.rejected}", calls
        n = parse_rationale(t.rationale).n_steps
        student_fb = parse_feedback(t.feedback, n) if t.feedback else None
        if _agrees(student_fb, reply.feedback):
            turns.append({"rationale": t.rationale, "feedback": t.feedback, "source": "student", "error_step": reply.feedback.error_step})
            if reply.feedback.is_correct:
                return turns, "direct" if len(turns) == 1 else "improvement", "correct", calls
            current, current_fb = t.rationale, reply.feedback
            if i + 1 < len(own):
                continue  # the student's own update comes next
            break
        turns.append({"rationale": t.rationale, "feedback": reply.text, "source": "student" if i == 0 else "student-update", "error_step": reply.feedback.error_step})
        if reply.feedback.is_correct:
            return turns, "direct" if len(turns) == 1 else "improvement", "correct", calls
        current, current_fb = t.rationale, reply.feedback
        break
    if current is None or current_fb is None:
        return turns, "failed", "empty attempt", calls

    # 2) Teacher edits from the first turn the student got wrong.
    critiqued = len(turns)  # the turns up to the answer the teacher corrects first, with its critique
    stalled = False
    for _ in range(max_edits):
        imp = teacher.improve(problem, current, current_fb)
        calls += imp.calls
        if imp.rationale is None:
            return turns, "failed", f"teacher improvement rejected: {imp.rejected}", calls
        reply = teacher.feedback(problem, imp.rationale)
        calls += reply.calls
        if reply.feedback is None:
            turns.append({"rationale": imp.rationale, "feedback": None, "source": "teacher"})
            return turns, "failed", f"teacher feedback rejected: {reply.rejected}", calls
        if not _legit_update(current_fb, current, imp.rationale):
            return turns, "failed", "no progress", calls
        stalled = stalled or not _feedback_progress(current_fb, reply.feedback)
        turns.append({"rationale": imp.rationale, "feedback": reply.text, "source": "teacher", "error_step": reply.feedback.error_step})
        if reply.feedback.is_correct:
            if stalled:
                return turns[:critiqued], "critique", "correct after an edit without progress: critique kept", calls
            return turns, "improvement", "correct", calls
        current, current_fb = imp.rationale, reply.feedback
    return turns, "failed", "max edits", calls


__all__ = ["MAX_ROUND_TRAJECTORIES", "CollectConfig", "TeacherUnavailable", "edit_trajectory", "teacher_unavailable"]
