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

It runs on the collection template (tripost.sources.template,
`RejectionLoop`), which does everything but judging: the batches, the seeds,
resuming (a record's key names problem, pass, sample and iteration; keys
already in the log are skipped), the summary. A run that ends with fewer
correct samples than `min_usable` says so in `stopped_early`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tripost.log import LogRecord
from tripost.sources.base import AttemptSampler, Job, SamplingSource, SourceResult, judge_attempt, student_sampler
from tripost.sources.editing import CollectConfig
from tripost.sources.template import Batch, CollectionLoop
from tripost.tasks.base import Problem
from tripost.student.base import StudentLike


class RejectionLoop(CollectionLoop):
    """Rejection sampling on the collection template (tripost.sources.template):
    a sample's record is its first attempt, judged against the gold answer."""

    name = "rejection"
    what = "correct samples"

    def __init__(self, problems: Sequence[Problem], sampler: AttemptSampler, log_path: str | Path, cfg: CollectConfig,
                 student_info: dict[str, Any] | None, progress: bool, on_record: Callable[[LogRecord], None] | None) -> None:
        super().__init__(problems, log_path, SourceResult(log_path=str(log_path)), iteration=cfg.iteration, seed=cfg.seed,
                         samples=cfg.samples_per_problem, passes=cfg.max_passes, batch_size=cfg.batch_size, min_usable=cfg.min_usable,
                         progress=progress, on_record=on_record)
        self.sampler, self.cfg, self.student_info = sampler, cfg, dict(student_info or {})

    def make_records(self, batch: Batch) -> list[LogRecord]:
        out = []
        for p, s, key, text in batch.attempts():
            attempt, right = judge_attempt(p, text)
            out.append(LogRecord(
                key=key, problem=p.to_dict(), kind="direct" if right else "failed",
                turns=[{"rationale": attempt, "feedback": None, "source": "student"}], final_correct=right,
                stop_reason="correct" if right else "wrong answer", sample_index=s, iteration=self.cfg.iteration, seed=self.cfg.seed,
                config_hash=self.cfg.config_hash, student=dict(self.student_info), source="rejection",
            ))
        return out


def rejection_collect(
    problems: Sequence[Problem],
    sampler: AttemptSampler,
    log_path: str | Path,
    cfg: CollectConfig | None = None,
    student_info: dict[str, Any] | None = None,
    progress: bool = True,
    on_record: Callable[[LogRecord], None] | None = None,
) -> SourceResult:
    """Sample `cfg.samples_per_problem` attempts per problem (for
    `cfg.max_passes` passes) and log each as `direct` or `failed` (`RejectionLoop`)."""
    return RejectionLoop(problems, sampler, log_path, cfg or CollectConfig(), student_info, progress, on_record).run()


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
                                 student_info=job.student_info, progress=job.progress, on_record=job.on_record)


__all__ = ["RejectionLoop", "RejectionSource", "rejection_collect"]
