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

The collection runs on the template every sampling source shares
(tripost/sources/template.py, `TeacherLoop`): batches, seeds, resuming and
the summary are the template's; the edit is this source's, and it uses the
template's async hook so that student sampling and teacher work overlap:
`take` hands a batch's trajectories to the thread pool (all of them at once,
bounded by `teacher_concurrency`) and logs the batch before it, so the
student samples the next batch while the teacher works. A batch still in the
pool when the usable target is reached is dropped, not logged (the template
stops before the next batch). A teacher that
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

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.log import LogRecord
from tripost.sources.base import AttemptSampler, Job, SamplingSource, SourceResult, student_sampler
from tripost.sources.editing import (MAX_ROUND_TRAJECTORIES, CollectConfig, TeacherUnavailable, edit_trajectory, teacher_unavailable,
                                     trajectory_record)
from tripost.sources.template import Batch, CollectionLoop
from tripost.student.base import StudentLike
from tripost.tasks.base import Problem
from tripost.teachers.base import Teacher
from tripost.teachers.usage import format_cost


# The summary of a teacher collection: the common one (tripost.sources.base).
CollectResult = SourceResult


class TeacherLoop(CollectionLoop):
    """TriPosT's editing on the collection template (tripost.sources.template):
    the record of a sampled attempt is its edited trajectory, edited in the
    pool (the template's async hook) while the student samples the next
    batch; a teacher that answers in rounds gets the whole pass at once."""

    def __init__(self, problems: Sequence[Problem], sampler: AttemptSampler, teacher: Teacher, log_path: str | Path, cfg: CollectConfig,
                 student_info: dict[str, Any] | None, progress: bool, on_record: Callable[[LogRecord], None] | None) -> None:
        super().__init__(problems, log_path, CollectResult(log_path=str(log_path)), iteration=cfg.iteration, seed=cfg.seed,
                         samples=cfg.samples_per_problem, passes=cfg.max_passes, batch_size=cfg.batch_size, min_usable=cfg.min_usable,
                         target=cfg.target_usable, ledger=getattr(teacher, "ledger", None), progress=progress, on_record=on_record)
        self.sampler, self.teacher, self.cfg, self.student_info = sampler, teacher, cfg, dict(student_info or {})
        self.rounds = bool(getattr(teacher, "answers_in_rounds", False))  # a batching teacher: the pass at once
        self.workers = (max(cfg.teacher_concurrency, min(len(problems) * cfg.samples_per_problem, MAX_ROUND_TRAJECTORIES)) if self.rounds
                        else cfg.teacher_concurrency)
        self.pending: list[tuple[Problem, Future]] = []  # the last batch's edits, logged once the next batch is sampled
        self.waiting: list[tuple[Problem, int, str, str]] = []  # rounds: the pass's sampled attempts, edited together

    def take(self, batch: Batch) -> None:
        self.bar.update(len(batch.problems) - len({i for i, _ in batch.todo}))  # the problems the log holds in full
        if not batch.todo:
            return
        if self.rounds:
            self.waiting += batch.attempts()
        else:
            # The student sampled this batch while the pool edited the last
            # one; now the last one is logged and this one submitted.
            self.drain(self.pending)
            self.pending = self.submit(batch.attempts())

    def end_pass(self) -> None:
        self.drain(self.pending + self.submit(self.waiting))
        self.pending, self.waiting = [], []

    def submit(self, todo: Sequence[tuple[Problem, int, str, str]]) -> list[tuple[Problem, Future]]:
        assert self.pool is not None
        return [(p, self.pool.submit(self.edit, p, key, s, text)) for p, s, key, text in todo]

    def edit(self, problem: Problem, key: str, sample_index: int, text: str) -> LogRecord:
        turns, kind, stop, calls = edit_trajectory(problem, text, self.teacher, self.cfg.max_edits)
        return trajectory_record(problem, key, sample_index, turns, kind, stop, [c.to_dict() for c in calls], self.cfg, self.student_info)

    def drain(self, futures: list[tuple[Problem, Future]]) -> None:
        """Log the finished edits in order; `max_unavailable` unreachable ones in a row stop the collection."""
        done_problems: set[str] = set()
        stop = False
        for i, (problem, fut) in enumerate(futures):
            if fut.cancelled():
                continue
            rec = fut.result()
            done_problems.add(problem.id)
            # An unavailable trajectory is left out of the log, so a rerun (the teacher back) does it.
            if not self.log(rec) and self.cfg.max_unavailable and self.tally.streak >= self.cfg.max_unavailable and not stop:
                stop = True
                for _, later in futures[i + 1 :]:
                    later.cancel()  # not started: nothing is lost; the running ones finish below
        self.bar.update(len(done_problems))
        r = self.result
        self.bar.set_postfix(usable=r.usable, calls=r.teacher_calls, cost=format_cost(r.cost_usd, r.unpriced))
        if stop:
            raise TeacherUnavailable.stopped(self.teacher, self.cfg.max_unavailable, self.writer, r)


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
    whatever is already there (`TeacherLoop`)."""
    return TeacherLoop(problems, sampler, teacher, log_path, cfg or CollectConfig(), student_info, progress, on_record).run()


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

    def collect(self, job: Job, student: StudentLike, teacher: Teacher | None) -> SourceResult:
        if teacher is None:
            raise TripostError("the teacher source needs a teacher")
        return collect(job.problems, student_sampler(student, self.job_params(job)), teacher, job.log_path, self.job_config(job),
                       student_info=job.student_info, progress=job.progress, on_record=job.on_record)


__all__ = ["CollectConfig", "CollectResult", "TeacherLoop", "TeacherSource", "TeacherUnavailable", "collect", "edit_trajectory", "teacher_unavailable"]
