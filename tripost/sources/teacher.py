"""Interactive trajectory editing: attempt -> feedback -> improve ... (TriPosT).

For each training problem the student samples attempts; the teacher checks
each one; a wrong attempt is improved by the teacher, and the loop repeats on
the improved text up to `max_edits` times (Yu et al. 2024, Section 2.1,
"interactive demonstrations"). An edit must make progress — the first error
moves to a later step, or the answer becomes right — with the steps before the
old error unchanged; otherwise the trajectory stops there. Each trajectory
ends as `improvement` (wrong, then fixed), `direct` (right at first) or
`failed`.

Once the student writes its own feedback (after training), its output is a
whole trajectory: its attempt, its feedback, its update, ... The teacher
checks every turn; the student's own turns are kept while its feedback agrees
with the teacher's, and editing starts at the first turn where it does not
(TriPosT's behaviour: the model's self-improvement is only corrected where it
goes wrong).

Student sampling and teacher work overlap: while a thread pool runs the
teacher on one batch's trajectories (all of them at once, bounded by
`teacher_concurrency`), the student samples the next batch. A teacher that
answers in rounds (provider batches, `teacher.batch`: `answers_in_rounds`)
takes minutes to hours a round, so there the student samples the whole pass
first and every trajectory of the pass is edited at once (up to
`MAX_ROUND_TRAJECTORIES`, one waiting thread each): a round of requests is
everything the pass can ask, sent as one provider batch or a few.

A trajectory whose teacher could not be reached (its requests failed after
all their retries: "unavailable") is not finished and is not logged, so a
rerun does it; `max_unavailable` of them in a row stop the collection with a
`TeacherUnavailable` error (a wrong server address would otherwise spend
every problem's retries and end with nothing).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tripost.errors import TripostError
from tripost.format import Feedback, parse_feedback, parse_rationale, parse_trajectory
from tripost.log import CORRECT_KINDS, LogRecord, usable
from tripost.settings import view
from tripost.sources.base import AttemptSampler, Job, SamplingSource, SourceResult, resume_log, sampled_batches, student_sampler
from tripost.sources.settings import CollectSettings
from tripost.tasks.base import Problem
from tripost.teachers.base import Teacher, TeacherCall
from tripost.teachers.options import TeacherOptions
from tripost.teachers.usage import format_cost


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


# The summary of a teacher collection: the common one (tripost.sources.base).
CollectResult = SourceResult


@dataclass
class TeacherTally:
    """What a teacher-backed source counts of each record it logs: kinds, stop
    reasons, teacher calls and their cost, rejections, and the models that
    answered without a price (their cost is unknown: "unpriced", not $0)."""

    kinds: Counter
    ledger: Any = None  # an LLM teacher's usage ledger: it knows which models have a price
    reasons: Counter = field(default_factory=Counter)
    rejections: Counter = field(default_factory=Counter)
    unpriced: set[str] = field(default_factory=set)

    def add(self, rec: LogRecord, result: SourceResult) -> None:
        result.records_written += 1
        self.kinds[rec.kind] += 1
        self.reasons[rec.stop_reason] += 1
        result.teacher_calls += len(rec.teacher_calls)
        result.batched_calls += sum(1 for c in rec.teacher_calls if c.get("batch"))
        result.cost_usd += sum(c.get("cost_usd", 0.0) for c in rec.teacher_calls)
        for c in rec.teacher_calls:
            if c.get("rejected"):
                self.rejections[c["rejected"]] += 1
            # `usage` is empty for a cache hit and a failed request: nothing was billed.
            if self.ledger is not None and c.get("usage") and self.ledger.unpriced(c["backend"], c["model"]):
                self.unpriced.add(f"{c['backend']}:{c['model']}")
        result.usable = usable(self.kinds)
        result.unpriced = sorted(self.unpriced)

    def close(self, result: SourceResult) -> None:
        result.by_kind = dict(self.kinds)
        result.stop_reasons = dict(self.reasons)
        result.teacher_rejections = dict(self.rejections)
        result.unpriced = sorted(self.unpriced)


def teacher_unavailable(rec: LogRecord) -> bool:
    """The trajectory ended because the teacher could not be reached (its last
    request failed after all retries): not a finished trajectory."""
    if rec.kind != "failed" or not rec.teacher_calls or not rec.teacher_calls[-1].get("rejected"):
        return False
    # Imported here: only LLM teachers reject as "unavailable", and the verbs
    # that never reach a teacher (buffer, replay) must not load their stack.
    from tripost.teachers.prompted import UNAVAILABLE

    return rec.teacher_calls[-1]["rejected"] == UNAVAILABLE


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


def collect(
    problems: Sequence[Problem],
    sampler: AttemptSampler,
    teacher: Teacher,
    log_path: str | Path,
    cfg: CollectConfig | None = None,
    student_info: dict[str, Any] | None = None,
    progress: bool = True,
    on_record: Callable[[LogRecord], None] | None = None,
) -> CollectResult:
    """Collect trajectories for `problems` into the log at `log_path`, resuming
    whatever is already there."""
    cfg = cfg or CollectConfig()
    if not problems:
        raise TripostError("collect: no problems")
    t0 = time.perf_counter()
    result = CollectResult(log_path=str(log_path))
    # Usable trajectories already in the log count toward the target.
    writer, kinds = resume_log(log_path, cfg.iteration)
    tally = TeacherTally(kinds, ledger=getattr(teacher, "ledger", None))
    result.usable = usable(kinds)

    bar = tqdm(total=len(problems) * cfg.max_passes, desc=f"collect it{cfg.iteration}", unit="problem", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    rounds = bool(getattr(teacher, "answers_in_rounds", False))  # a batching teacher: the pass at once
    workers = max(cfg.teacher_concurrency, min(len(problems) * cfg.samples_per_problem, MAX_ROUND_TRAJECTORIES)) if rounds else cfg.teacher_concurrency
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="teacher")

    def finish(problem: Problem, key: str, sample_index: int, text: str) -> LogRecord:
        turns, kind, stop, calls = edit_trajectory(problem, text, teacher, cfg.max_edits)
        return LogRecord(
            key=key, problem=problem.to_dict(), kind=kind, turns=turns, final_correct=kind in CORRECT_KINDS,
            stop_reason=stop, sample_index=sample_index, iteration=cfg.iteration, seed=cfg.seed,
            config_hash=cfg.config_hash, teacher_calls=[c.to_dict() for c in calls], student=dict(student_info or {}),
        )

    streak = 0  # trajectories in a row whose teacher could not be reached

    def drain(futures: list[tuple[Problem, Future]]) -> None:
        nonlocal streak
        done_problems: set[str] = set()
        stop = False
        for i, (problem, fut) in enumerate(futures):
            if fut.cancelled():
                continue
            rec = fut.result()
            done_problems.add(problem.id)
            if teacher_unavailable(rec):
                # Left out of the log, so a rerun (the teacher back) does it.
                result.unavailable += 1
                streak += 1
                if cfg.max_unavailable and streak >= cfg.max_unavailable and not stop:
                    stop = True
                    for _, later in futures[i + 1 :]:
                        later.cancel()  # not started: nothing is lost; the running ones finish below
                continue
            streak = 0
            writer.write(rec)
            if on_record:
                on_record(rec)
            tally.add(rec, result)  # keeps result.usable current
        bar.update(len(done_problems))
        bar.set_postfix(usable=result.usable, calls=result.teacher_calls, cost=format_cost(result.cost_usd, result.unpriced))
        if stop:
            raise TeacherUnavailable(
                f"the teacher {getattr(teacher, 'name', 'teacher')} did not answer for {cfg.max_unavailable} trajectories in a row "
                f"(every request failed after its retries), so collection stopped; {writer.n_records} trajectories are in {log_path} "
                f"({result.records_written} new). Check the teacher's server and address (OPENAI_BASE_URL, ANTHROPIC_BASE_URL), "
                f"then rerun the same command to go on"
            )

    def reached() -> bool:
        return cfg.target_usable is not None and result.usable >= cfg.target_usable

    def submit(todo: Sequence[tuple[Problem, int, str, str]]) -> list[tuple[Problem, Future]]:
        return [(p, pool.submit(finish, p, key, s, text)) for p, s, key, text in todo]

    try:
        pending: list[tuple[Problem, Future]] = []
        waiting: list[tuple[Problem, int, str, str]] = []  # rounds: the pass's sampled attempts, edited together
        for batch in sampled_batches(problems, sampler, writer.done, samples=cfg.samples_per_problem, batch_size=cfg.batch_size,
                                     passes=cfg.max_passes, iteration=cfg.iteration, seed=cfg.seed, stop=reached):
            result.passes = batch.pass_index + 1
            result.records_skipped += batch.skipped * cfg.samples_per_problem
            bar.update(batch.skipped)
            if len(batch.problems) > batch.skipped:
                if rounds:
                    waiting += batch.todo
                else:
                    # The student sampled this batch while the pool edited the
                    # last one; now the last one is logged and this one submitted.
                    drain(pending)
                    pending = submit(batch.todo)
            if batch.last_in_pass:
                drain(pending + submit(waiting))
                pending, waiting = [], []
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        writer.close()
        bar.close()

    tally.close(result)
    result.seconds = time.perf_counter() - t0
    if cfg.target_usable is not None and result.usable < cfg.target_usable:
        result.stopped_early = f"only {result.usable} usable trajectories after {result.passes} pass(es); target was {cfg.target_usable}"
    elif result.usable < cfg.min_usable:
        result.stopped_early = f"only {result.usable} usable trajectories (minimum {cfg.min_usable})"
    return result


class TeacherSource(SamplingSource):
    """TriPosT's interactive editing as a registered source: the student
    samples, the teacher checks and fixes (`collect`)."""

    name = "teacher"
    needs_teacher = True

    @classmethod
    def from_settings(cls, s: Any, teacher_concurrency: int) -> "TeacherSource":
        return cls(CollectConfig(samples_per_problem=s.samples_per_problem, max_edits=s.max_edits, max_passes=s.max_passes,
                                 target_usable=s.target_usable, batch_size=s.batch_size, max_unavailable=s.max_unavailable,
                                 teacher_concurrency=teacher_concurrency), s.sampling_params())

    def collect(self, job: Job, student: Any, teacher: Teacher | None) -> SourceResult:
        if teacher is None:
            raise TripostError("the teacher source needs a teacher")
        return collect(job.problems, student_sampler(student, self.job_params(job)), teacher, job.log_path, self.job_config(job),
                       student_info=job.student_info, progress=job.progress, on_record=job.on_record)


__all__ = ["CollectConfig", "CollectResult", "TeacherSource", "TeacherTally", "TeacherUnavailable", "collect", "edit_trajectory", "teacher_unavailable"]
