"""What every data source shares: the interface, the summary, keys and seeds.

A data source turns training problems into interaction-log records with the
student (and, for some, a teacher). Every source:

- is given a `Job` (problems, the log to append to, iteration, seed, the run's
  config hash) and returns a `SourceResult` (one summary type; a source may
  extend it with fields of its own);
- names each record by a key (`record_key`, or a source's own) and skips keys
  already in the log, so a rerun of a killed collection resumes without
  duplicates;
- samples a batch with a seed derived from the whole batch (`batch_seed`;
  `sample_seed` for the teacher and rejection sources), so a resumed record
  equals the one an uninterrupted run would have written.

The loop that does all this is written once, in tripost/sources/template.py
(`CollectionLoop`); this module holds what it and the guided source (a loop
of its own) are built from: the types above, `progress_bar`, judging an
attempt, and `student_sampler`.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from tripost.format import parse_trajectory
from tripost.log import LogRecord
from tripost.student import build_prompts
from tripost.tasks import get_task
from tripost.tasks.base import Problem
from tripost.student.base import StudentLike


class AttemptSampler(Protocol):
    """What a source needs from the student: `n` sampled texts per problem.
    `seed` makes a call reproducible (derived from the run seed)."""

    def __call__(self, problems: Sequence[Problem], n: int, seed: int) -> list[list[str]]:
        ...


@dataclass(frozen=True)
class Job:
    """One collection: what every source is given besides its settings."""

    problems: Sequence[Problem]
    log_path: Path
    iteration: int = 0
    seed: int = 0
    config_hash: str = ""
    student_info: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    on_record: Callable[[LogRecord], None] | None = None


@dataclass
class SourceResult:
    """What a collection did: the summary every source returns (and that the
    run writes to itT/collect/collect.json). `usable` counts the records the
    buffer can train on; teacher fields stay 0 for teacher-free sources.
    `usable`, `by_kind` and `stop_reasons` describe the whole collection, the
    records a resumed run found in the log (`records_skipped`) included;
    `records_written` and the teacher's calls, cost and rejections are this
    run's (tripost.sources.template `Tally`)."""

    log_path: str
    records_written: int = 0
    records_skipped: int = 0  # already in the log (resumed)
    usable: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    stop_reasons: dict[str, int] = field(default_factory=dict)
    teacher_calls: int = 0
    batched_calls: int = 0  # of which a provider batch answered, at half the list price (teacher.batch)
    teacher_rejections: dict[str, int] = field(default_factory=dict)
    unavailable: int = 0  # trajectories left out of the log: the teacher could not be reached (a rerun does them)
    cost_usd: float = 0.0
    # `backend:model` of teacher models that answered without a price: their
    # share of `cost_usd` is unknown, so a report shows "unpriced", not $0.
    unpriced: list[str] = field(default_factory=list)
    passes: int = 0
    stopped_early: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Source(Protocol):
    """A registered data source (tripost.sources). `needs_teacher` says whether
    `collect` must be given a teacher; `student` is a loaded
    `tripost.student.Student` (or a remote one). A source that samples no
    attempt may say `needs_student = False` (then it gets None)."""

    name: str
    needs_teacher: bool

    def collect(self, job: Job, student: StudentLike, teacher: Any | None) -> SourceResult:
        ...


@dataclass
class SamplingSource:
    """What the sources that sample with `SamplingParams` share: their method
    config (a dataclass with `iteration`, `seed` and `config_hash` fields) and
    how the student samples. Subclasses set `name` and `needs_teacher`."""

    config: Any
    params: Any  # tripost.student.SamplingParams

    def job_config(self, job: Job) -> Any:
        """The method config of this job (its iteration, seed and run hash)."""
        return replace(self.config, iteration=job.iteration, seed=job.seed, config_hash=job.config_hash)

    def job_params(self, job: Job) -> Any:
        return replace(self.params, seed=job.seed)


# ------------------------------------------------------------ keys, seeds ---


def record_key(problem: Problem, pass_index: int, sample_index: int, iteration: int) -> str:
    return f"{problem.id}#p{pass_index}s{sample_index}@it{iteration}"


def batch_seed(problem_ids: Sequence[str], *parts: object) -> int:
    """The seed of one sampler call over a batch: `problem_ids` are the whole
    batch's, in order, not only those still to do. The student draws each
    sequence from (this seed, prompt index, sample index) and its arithmetic
    depends on which prompts share the call, so a resumed run reproduces a
    record only by repeating its batch's call exactly: a record's text is fixed
    by the run seed, iteration, pass (or round), its batch and its place in
    it, never by how far a killed run got. `parts` (a source's tag, seed,
    iteration, pass ...) come first in the hash, `|`-separated."""
    h = hashlib.sha256("|".join([*map(str, parts), ",".join(problem_ids)]).encode()).digest()
    return int.from_bytes(h[:4], "big")


def sample_seed(seed: int, iteration: int, pass_index: int, problem_ids: Sequence[str]) -> int:
    """`batch_seed` of a pass of the teacher and rejection sources."""
    return batch_seed(problem_ids, seed, iteration, pass_index)


def progress_bar(desc: str, total: int, progress: bool, *, unit: str = "problem", initial: int = 0) -> tqdm:
    """The progress bar every source shows on stderr while it collects (none when `progress` is False)."""
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not progress, file=sys.stderr, dynamic_ncols=True)


# ---------------------------------------------------------------- judging ---


def judge(problem: Problem, text: str) -> tuple[str, str | None, bool]:
    """(first rationale of `text`, its parsed answer, whether that answer is
    right). Only the first attempt is judged: what the student wrote after it
    (its own feedback and updates) is not, since nothing checked it."""
    turns = parse_trajectory(text).turns
    attempt = turns[0].rationale if turns else text.strip()
    task = get_task(problem.family)
    answer = task.parse_answer(attempt) if attempt.strip() else None
    return attempt, answer, bool(answer is not None and task.check_answer(problem, answer))


def judge_attempt(problem: Problem, text: str) -> tuple[str, bool]:
    """(first attempt's rationale, whether its answer is right)."""
    attempt, _, right = judge(problem, text)
    return attempt, right


def student_sampler(student: StudentLike, params: Any, prompt_format: Any = None) -> AttemptSampler:
    """An `AttemptSampler` over a loaded `tripost.student.Student`: the problem
    prompt is the one the student is trained on (tripost.student.prompt)."""
    def sampler(problems: Sequence[Problem], n: int, seed: int) -> list[list[str]]:
        prompts = build_prompts(student.tokenizer, [p.question for p in problems], prompt_format)
        p = replace(params, n=n if not params.greedy else 1, seed=seed)
        rows = student.sample(prompts, p)
        return [[g.text for g in row] for row in rows]

    return sampler


__all__ = [
    "AttemptSampler",
    "Job",
    "SamplingSource",
    "Source",
    "SourceResult",
    "batch_seed",
    "judge",
    "judge_attempt",
    "progress_bar",
    "record_key",
    "sample_seed",
    "student_sampler",
]
