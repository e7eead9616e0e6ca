"""Rejection sampling without a teacher: the student's own correct samples.

The baseline TriPosT is measured against (Yu et al. 2024, Section 4,
"LMSI"/"rejection sampling"; Zelikman et al. 2022, STaR, without its
rationalization step; Huang et al. 2022, LMSI): the student samples K
attempts per training problem, each is checked against the gold answer, and
only the correct ones are trained on. No teacher call, no feedback, no edit.

Each sample becomes one log record with `source="rejection"`: kind `direct`
(its first attempt's answer is right: one turn, trained as attempt + the
closing "also correct" feedback, exactly like TriPosT's `direct` data) or
`failed` (wrong: dropped by the buffer). Only the first attempt is judged —
what the student wrote after it (its own feedback and updates) is not
trained on, since nothing checked it.

Resumable like every source (tripost.sources.base): a record's key names
problem, pass, sample and iteration, and keys already in the log are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.log import LogRecord
from tripost.sources.base import (AttemptSampler, Job, SamplingSource, SourceResult, judge_attempt, progress_bar, resume_log,
                                  sampled_batches, student_sampler)
from tripost.sources.editing import CollectConfig
from tripost.tasks.base import Problem
from tripost.student.base import StudentLike


def rejection_collect(
    problems: Sequence[Problem],
    sampler: AttemptSampler,
    log_path: str | Path,
    cfg: CollectConfig | None = None,
    student_info: dict[str, Any] | None = None,
    progress: bool = True,
) -> SourceResult:
    """Sample `cfg.samples_per_problem` attempts per problem (for
    `cfg.max_passes` passes) and log each as `direct` or `failed`."""
    cfg = cfg or CollectConfig()
    if not problems:
        raise TripostError("rejection: no problems")
    t0 = time.perf_counter()
    result = SourceResult(log_path=str(log_path))
    writer, kinds = resume_log(log_path, cfg.iteration)
    bar = progress_bar(f"rejection it{cfg.iteration}", len(problems) * cfg.max_passes, progress)
    try:
        for batch in sampled_batches(problems, sampler, writer.done, samples=cfg.samples_per_problem, batch_size=cfg.batch_size,
                                     passes=cfg.max_passes, iteration=cfg.iteration, seed=cfg.seed):
            result.passes = batch.pass_index + 1
            result.records_skipped += batch.skipped * cfg.samples_per_problem
            for p, s, key, text in batch.todo:
                attempt, right = judge_attempt(p, text)
                kind = "direct" if right else "failed"
                writer.write(LogRecord(
                    key=key, problem=p.to_dict(), kind=kind, turns=[{"rationale": attempt, "feedback": None, "source": "student"}],
                    final_correct=right, stop_reason="correct" if right else "wrong answer", sample_index=s,
                    iteration=cfg.iteration, seed=cfg.seed, config_hash=cfg.config_hash, student=dict(student_info or {}),
                    source="rejection",
                ))
                result.records_written += 1
                kinds[kind] += 1
            bar.update(len(batch.problems))
            bar.set_postfix(correct=kinds["direct"])
    finally:
        writer.close()
        bar.close()
    result.usable = kinds["direct"]
    result.by_kind = dict(kinds)
    result.stop_reasons = {"correct": kinds["direct"], "wrong answer": kinds["failed"]}
    result.seconds = time.perf_counter() - t0
    if result.usable < cfg.min_usable:
        result.stopped_early = f"only {result.usable} correct samples (minimum {cfg.min_usable})"
    return result


class RejectionSource(SamplingSource):
    """Rejection sampling as a registered source: the student's own correct
    samples, no teacher (`rejection_collect`)."""

    name = "rejection"
    needs_teacher = False

    @classmethod
    def from_settings(cls, s: Any, teacher_concurrency: int) -> "RejectionSource":
        return cls(CollectConfig(samples_per_problem=s.samples_per_problem, max_passes=s.max_passes, batch_size=s.batch_size),
                   s.sampling_params())

    def collect(self, job: Job, student: StudentLike, teacher: Any | None = None) -> SourceResult:
        return rejection_collect(job.problems, student_sampler(student, self.job_params(job)), job.log_path, self.job_config(job),
                                 student_info=job.student_info, progress=job.progress)


__all__ = ["RejectionSource", "rejection_collect"]
