"""SFT-sharpening as a data source (Huang et al. 2024; tripost/sharpen.py).

For each training problem, sample N attempts, keep the best by the student's
own reward, and log it as a `direct` record with `source="sharpen"`, no
feedback and `checked=False`. The replay buffer trains an unchecked record as
a plain attempt (tripost/buffer.py): the attempt and its end-of-sequence token,
all at the attempt's weight. That is the sequence the likelihood rewards
scored (`append_eos`), so SFT on it raises log pi(y_best | x), as
SFT-sharpening prescribes. It gets no closing "The final response is also
correct." and so none of TriPosT's 1.5 feedback weight (tripost.train): that
sentence is the verdict the student learns to write about its own attempt,
and here nothing checked the attempt, so appending it would teach the student
to approve its answers unchecked (issue 18). The price: a student trained on
sharpen data alone learns to end after its attempt and writes no feedback at
test time. `final_correct` says whether the pick is in fact right (for
reporting); the buffer keeps unchecked records either way, because not
checking answers is the point.

It runs on the collection template (tripost/sources/template.py,
`SharpenLoop`): one record per problem (`sharpen_key`), drawn and scored
`chunk_size` problems at a time (`draw_candidates`, seeded by the chunk's
problem ids, `sharpen_seed`) and picked (`picks`). Unlike the other
sources' batches, a chunk is made of the problems the log does not hold yet,
so a resumed run draws its missing problems in other chunks, with other
seeds, than the uninterrupted run did: its records are as valid, not the
same (a known difference, kept when the source moved onto the template so
that no logged record changed; `SharpenLoop.batches` is the one place to
change it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.log import LogRecord
from tripost.sharpen import Candidate, DrawStats, SharpenConfig, best_of_n, count_answers, draw_candidates, worst_of_n
from tripost.sources.base import Job, SourceResult, batch_seed
from tripost.sources.template import Batch, CollectionLoop
from tripost.tasks.base import Problem
from tripost.student.base import StudentLike


def sharpen_key(problem: Problem, reward: str, iteration: int) -> str:
    """The log key of a problem's sharpened record (one per problem, reward and iteration)."""
    return f"{problem.id}#sharpen-{reward}@it{iteration}"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def sharpen_records(
    problems: Sequence[Problem],
    student: StudentLike,
    config: SharpenConfig,
    iteration: int = 0,
    seed: int = 0,
    *,
    config_hash: str = "",
    student_info: dict[str, Any] | None = None,
    prompt_format: Any = None,
    progress: bool = False,
    stats: DrawStats | None = None,
) -> list[LogRecord]:
    """One `source="sharpen"` record per problem: `config.samples` attempts
    (seeded by seed, iteration and the problem ids, `sharpen_seed`), the one
    `config.reward` picks kept as a `direct` record with no feedback (`picks`)."""
    if not problems:
        return []
    draw_seed = sharpen_seed([p.id for p in problems], seed, iteration)
    candidates = draw_candidates(student, problems, config.samples, config, draw_seed, prompt_format=prompt_format, progress=progress, stats=stats)
    info = dict(student_info if student_info is not None else (student.describe() if hasattr(student, "describe") else {}))
    return picks(problems, candidates, config, draw_seed, info, iteration=iteration, seed=seed, config_hash=config_hash)


def sharpen_seed(problem_ids: Sequence[str], seed: int, iteration: int) -> int:
    """The seed of one draw over these problems (tripost.sources.base `batch_seed`)."""
    return batch_seed(problem_ids, "sharpen", seed, iteration)


def picks(problems: Sequence[Problem], candidates: Sequence[Sequence[Candidate]], config: SharpenConfig, draw_seed: int,
          student_info: dict[str, Any], *, iteration: int, seed: int, config_hash: str) -> list[LogRecord]:
    """The records of drawn candidates: per problem, the one `config.reward`
    picks, a `direct` record with no feedback (nothing checked it; the
    module docstring says why). `final_correct` reports whether the pick is
    in fact right; it does not decide anything. A problem whose attempts are
    all empty gives a `failed` record (stop reason "empty attempt")."""
    info = {**student_info, "sampling": config.sampling_params(config.samples, draw_seed).to_dict()}
    out = []
    for problem, cands in zip(problems, candidates):
        pick = best_of_n(cands, config.reward)
        c = cands[pick]
        empty = not c.text
        turn = {
            "rationale": c.text,
            "feedback": None,  # no verdict: nothing checked the pick
            "source": "student",
            "answer": c.answer,
            "logprob": _finite(c.logprob),
            "mean_logprob": _finite(c.mean_logprob),
            "n_tokens": c.n_tokens,
        }
        votes = count_answers(x.answer for x in cands)
        # The other side of an RLHF-sharpening pair: the sample the same reward rates lowest.
        low = worst_of_n(cands, config.reward, pick) if not empty else None
        rejected = None if low is None else {
            "rationale": cands[low].text, "answer": cands[low].answer, "sample_index": low,
            "logprob": _finite(cands[low].logprob), "mean_logprob": _finite(cands[low].mean_logprob), "n_tokens": cands[low].n_tokens,
        }
        out.append(LogRecord(
            key=sharpen_key(problem, config.reward, iteration), problem=problem.to_dict(),
            kind="failed" if empty else "direct", turns=[turn], final_correct=c.correct and not empty,
            stop_reason="empty attempt" if empty else f"best of {len(cands)} by {config.reward}",
            sample_index=pick, iteration=iteration, seed=seed, config_hash=config_hash,
            student={**info, "sharpen": {
                "reward": config.reward, "samples": len(cands), "chosen": pick,
                "correct_samples": sum(x.correct for x in cands), "answers": votes,
            }},
            source="sharpen", checked=False, rejected=rejected,
        ))
    return out


@dataclass
class SharpenDataResult(SourceResult):
    """The common summary, plus what the picks were (reporting only)."""

    chosen_correct: int = 0  # of the written picks (reporting only)
    any_correct: int = 0  # written problems with at least one correct sample
    failed: int = 0  # written picks that are empty
    draw: DrawStats = field(default_factory=DrawStats)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["draw"] = self.draw.to_dict()
        return d


class SharpenLoop(CollectionLoop):
    """SFT-sharpening on the collection template (tripost.sources.template):
    one record per problem, drawn `chunk_size` problems at a time. Its batches
    are chunks of the problems the log does not hold yet (not of all the
    problems): a chunk's seed names its problems, so a resumed run draws
    its missing problems anew rather than as the uninterrupted run did."""

    result: SharpenDataResult  # the summary this source fills
    name = "sharpen"

    def __init__(self, problems: Sequence[Problem], student: StudentLike, log_path: str | Path, config: SharpenConfig, iteration: int,
                 seed: int, chunk_size: int, config_hash: str, student_info: dict[str, Any] | None, prompt_format: Any, progress: bool) -> None:
        super().__init__(problems, log_path, SharpenDataResult(log_path=str(log_path)), iteration=iteration, seed=seed,
                         batch_size=chunk_size, progress=progress)
        self.student, self.config, self.config_hash, self.prompt_format = student, config, config_hash, prompt_format
        self.info = dict(student_info if student_info is not None else (student.describe() if hasattr(student, "describe") else {}))

    def key(self, problem: Problem, pass_index: int, index: int) -> str:
        return sharpen_key(problem, self.config.reward, self.iteration)

    def seed(self, problem_ids: Sequence[str], pass_index: int) -> int:
        return sharpen_seed(problem_ids, self.run_seed, self.iteration)

    def batches(self, pass_index: int) -> list[list[Problem]]:
        todo = [p for p in self.problems if not self.writer.done(self.key(p, 0, 0))]
        return [todo[i : i + self.batch_size] for i in range(0, len(todo), self.batch_size)]

    def sample(self, batch: Batch) -> list[list[Candidate]]:
        return draw_candidates(self.student, batch.problems, self.config.samples, self.config, batch.seed, prompt_format=self.prompt_format,
                               stats=self.result.draw)

    def make_records(self, batch: Batch) -> list[LogRecord]:
        return picks(batch.problems, batch.drawn, self.config, batch.seed, self.info, iteration=self.iteration, seed=self.run_seed,
                     config_hash=self.config_hash)

    def count(self, rec: LogRecord, written: bool) -> None:
        if written:  # the picks' numbers are of this run's picks (`tripost collect` prints them as such)
            self.result.chosen_correct += rec.final_correct
            self.result.any_correct += rec.student["sharpen"]["correct_samples"] > 0
            self.result.failed += rec.kind == "failed"

    def postfix(self) -> dict[str, Any]:
        return {"picked_correct": self.result.chosen_correct}


def write_sharpen_log(
    problems: Sequence[Problem],
    student: StudentLike,
    log_path: str | Path,
    config: SharpenConfig,
    iteration: int = 0,
    seed: int = 0,
    *,
    chunk_size: int = 16,
    config_hash: str = "",
    student_info: dict[str, Any] | None = None,
    prompt_format: Any = None,
    progress: bool = True,
) -> SharpenDataResult:
    """`sharpen_records` for `problems` appended to the interaction log at
    `log_path`, `chunk_size` problems at a time (each chunk flushed before the
    next is sampled). Resumable: problems whose key is already in the log are
    skipped, like every source (`SharpenLoop`)."""
    if chunk_size < 1:
        raise TripostError(f"chunk size must be at least 1, got {chunk_size}")
    return SharpenLoop(problems, student, log_path, config, iteration, seed, chunk_size, config_hash, student_info, prompt_format, progress).run()


@dataclass
class SharpenSource:
    """SFT-sharpening as a registered source (`write_sharpen_log`)."""

    config: SharpenConfig
    name: str = "sharpen"
    needs_teacher: bool = False

    @classmethod
    def from_settings(cls, s: Any, teacher_concurrency: int) -> "SharpenSource":
        return cls(SharpenConfig(samples=s.samples_per_problem, reward=s.sharpen_reward, temperature=s.temperature, top_p=s.top_p,
                                 max_new_tokens=s.max_new_tokens, batch_size=s.batch_size))

    def collect(self, job: Job, student: StudentLike, teacher: Any | None = None) -> SourceResult:
        return write_sharpen_log(job.problems, student, job.log_path, self.config, iteration=job.iteration, seed=job.seed,
                                 config_hash=job.config_hash, student_info=job.student_info, progress=job.progress)


__all__ = ["SharpenDataResult", "SharpenLoop", "SharpenSource", "picks", "sharpen_key", "sharpen_records", "sharpen_seed", "write_sharpen_log"]
