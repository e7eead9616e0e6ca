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

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.log import CORRECT_KINDS, LogRecord, usable
from tripost.sources.base import (AttemptSampler, Job, SamplingSource, SourceResult, progress_bar, resume_log, sampled_batches,
                                  student_sampler)
from tripost.sources.editing import (MAX_ROUND_TRAJECTORIES, CollectConfig, TeacherTally, TeacherUnavailable, edit_trajectory,
                                     teacher_unavailable)
from tripost.student.base import StudentLike
from tripost.tasks.base import Problem
from tripost.teachers.base import Teacher
from tripost.teachers.usage import format_cost


# The summary of a teacher collection: the common one (tripost.sources.base).
CollectResult = SourceResult


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

    bar = progress_bar(f"collect it{cfg.iteration}", len(problems) * cfg.max_passes, progress)
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

    def drain(futures: list[tuple[Problem, Future]]) -> None:
        done_problems: set[str] = set()
        stop = False
        for i, (problem, fut) in enumerate(futures):
            if fut.cancelled():
                continue
            rec = fut.result()
            done_problems.add(problem.id)
            # An unavailable trajectory is left out of the log, so a rerun (the teacher back) does it.
            if not tally.log(rec, result, writer, on_record) and cfg.max_unavailable and tally.streak >= cfg.max_unavailable and not stop:
                stop = True
                for _, later in futures[i + 1 :]:
                    later.cancel()  # not started: nothing is lost; the running ones finish below
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

    def collect(self, job: Job, student: StudentLike, teacher: Teacher | None) -> SourceResult:
        if teacher is None:
            raise TripostError("the teacher source needs a teacher")
        return collect(job.problems, student_sampler(student, self.job_params(job)), teacher, job.log_path, self.job_config(job),
                       student_info=job.student_info, progress=job.progress, on_record=job.on_record)


__all__ = ["CollectConfig", "CollectResult", "TeacherSource", "TeacherTally", "TeacherUnavailable", "collect", "edit_trajectory", "teacher_unavailable"]
