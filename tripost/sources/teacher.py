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
`teacher_concurrency`), the student samples the next batch.

A trajectory whose teacher could not be reached (its requests failed after
all their retries: "unavailable") is not finished and is not logged, so a
rerun does it; `max_unavailable` of them in a row stop the collection with a
`TeacherUnavailable` error (a wrong server address would otherwise spend
every problem's retries and end with nothing).
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from tripost.errors import TripostError
from tripost.student.generate import DEFAULT_BATCH
from tripost.format import Feedback, parse_feedback, parse_rationale, parse_trajectory
from tripost.log import LogRecord, LogWriter, read_log
from tripost.tasks.base import Problem
from tripost.teachers.base import Teacher, TeacherCall
from tripost.teachers.usage import format_cost


class AttemptSampler(Protocol):
    """What collection needs from the student: `n` sampled texts per problem.
    `seed` makes a call reproducible (the loop derives it from the run seed)."""

    def __call__(self, problems: Sequence[Problem], n: int, seed: int) -> list[list[str]]:
        ...


@dataclass
class CollectConfig:
    samples_per_problem: int = 1
    max_edits: int = 5  # teacher improvements per trajectory (TriPosT: 5)
    max_passes: int = 1  # passes over the problems
    target_usable: int | None = None  # stop once this many usable trajectories exist
    min_usable: int = 1  # fewer usable than this at the end: say so
    batch_size: int = DEFAULT_BATCH  # problems per student batch (tripost.student.generate)
    teacher_concurrency: int = 8  # trajectories edited at once
    # Trajectories in a row whose teacher could not be reached before the
    # collection stops (0: never stop). Each has already outlived its
    # requests' retries, so a few in a row mean the teacher is down or the
    # address is wrong, not a passing hiccup.
    max_unavailable: int = 8
    iteration: int = 0
    seed: int = 0
    config_hash: str = ""

    def __post_init__(self) -> None:
        for name in ("samples_per_problem", "max_passes", "batch_size", "teacher_concurrency"):
            if getattr(self, name) < 1:
                raise TripostError(f"collect: {name} must be at least 1")
        if self.max_edits < 0:
            raise TripostError("collect: max_edits must be >= 0")
        if self.max_unavailable < 0:
            raise TripostError("collect: max_unavailable must be >= 0")


class TeacherUnavailable(TripostError):
    """The teacher could not be reached for `CollectConfig.max_unavailable`
    trajectories in a row; what was collected before stays in the log."""


@dataclass
class CollectResult:
    log_path: str
    records_written: int = 0
    records_skipped: int = 0  # already in the log (resumed)
    usable: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    stop_reasons: dict[str, int] = field(default_factory=dict)
    teacher_calls: int = 0
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


def record_key(problem: Problem, pass_index: int, sample_index: int, iteration: int) -> str:
    return f"{problem.id}#p{pass_index}s{sample_index}@it{iteration}"


def sample_seed(seed: int, iteration: int, pass_index: int, problem_ids: Sequence[str]) -> int:
    """The seed of one sampler call over a batch: `problem_ids` are the whole
    batch's, in order, not only those still to do. The student draws each
    sequence from (this seed, prompt index, sample index) and its arithmetic
    depends on which prompts share the call, so a resumed run reproduces a
    record only by repeating its batch's call exactly: a record's text is fixed
    by the run seed, iteration, pass, its batch (the problem list and
    batch_size) and its place in it, never by how far a killed run got."""
    h = hashlib.sha256(f"{seed}|{iteration}|{pass_index}|{','.join(problem_ids)}".encode()).digest()
    return int.from_bytes(h[:4], "big")


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


def _progress(prev: Feedback, prev_text: str, new: Feedback, new_text: str) -> bool:
    """An edit makes progress when the steps before the old error are unchanged
    and the new first error is later (or gone)."""
    k = prev.error_step or 0
    a, b = parse_rationale(prev_text), parse_rationale(new_text)
    if list(a.steps[: k - 1]) != list(b.steps[: k - 1]):
        return False
    return new.error_step is None or new.error_step > k


def edit_trajectory(problem: Problem, student_text: str, teacher: Teacher, max_edits: int) -> tuple[list[dict[str, Any]], str, str, list[TeacherCall]]:
    """Run the teacher over one student output. Returns (turns, kind, stop_reason, calls)."""
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
        if not _progress(current_fb, current, reply.feedback, imp.rationale):
            return turns, "failed", "no progress", calls
        turns.append({"rationale": imp.rationale, "feedback": reply.text, "source": "teacher", "error_step": reply.feedback.error_step})
        if reply.feedback.is_correct:
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
    kinds: Counter = Counter()
    reasons: Counter = Counter()
    rejections: Counter = Counter()
    # Usable trajectories already in the log count toward the target.
    writer = LogWriter(log_path)
    for rec in read_log(log_path):
        if rec.iteration == cfg.iteration:
            kinds[rec.kind] += 1
    result.usable = kinds["improvement"] + kinds["direct"]

    bar = tqdm(total=len(problems) * cfg.max_passes, desc=f"collect it{cfg.iteration}", unit="problem", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=cfg.teacher_concurrency, thread_name_prefix="teacher")

    def finish(problem: Problem, key: str, sample_index: int, text: str) -> LogRecord:
        turns, kind, stop, calls = edit_trajectory(problem, text, teacher, cfg.max_edits)
        return LogRecord(
            key=key, problem=problem.to_dict(), kind=kind, turns=turns, final_correct=kind != "failed",
            stop_reason=stop, sample_index=sample_index, iteration=cfg.iteration, seed=cfg.seed,
            config_hash=cfg.config_hash, teacher_calls=[c.to_dict() for c in calls], student=dict(student_info or {}),
        )

    streak = 0  # trajectories in a row whose teacher could not be reached
    ledger = getattr(teacher, "ledger", None)  # LLM teachers: it knows which models have a price
    unpriced: set[str] = set()

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
            result.records_written += 1
            kinds[rec.kind] += 1
            reasons[rec.stop_reason] += 1
            result.teacher_calls += len(rec.teacher_calls)
            result.cost_usd += sum(c.get("cost_usd", 0.0) for c in rec.teacher_calls)
            for c in rec.teacher_calls:
                if c.get("rejected"):
                    rejections[c["rejected"]] += 1
                # `usage` is empty for a cache hit and a failed request: nothing was billed.
                if ledger is not None and c.get("usage") and ledger.unpriced(c["backend"], c["model"]):
                    unpriced.add(f"{c['backend']}:{c['model']}")
        result.usable = kinds["improvement"] + kinds["direct"]
        result.unpriced = sorted(unpriced)
        bar.update(len(done_problems))
        bar.set_postfix(usable=result.usable, calls=result.teacher_calls, cost=format_cost(result.cost_usd, result.unpriced))
        if stop:
            raise TeacherUnavailable(
                f"the teacher {getattr(teacher, 'name', 'teacher')} did not answer for {cfg.max_unavailable} trajectories in a row "
                f"(every request failed after its retries), so collection stopped; {writer.n_records} trajectories are in {log_path} "
                f"({result.records_written} new). Check the teacher's server and address (OPENAI_BASE_URL, ANTHROPIC_BASE_URL), "
                f"then rerun the same command to go on"
            )

    try:
        pending: list[tuple[Problem, Future]] = []
        for pass_index in range(cfg.max_passes):
            result.passes = pass_index + 1
            for start in range(0, len(problems), cfg.batch_size):
                if cfg.target_usable is not None and result.usable >= cfg.target_usable:
                    break
                batch = list(problems[start : start + cfg.batch_size])
                todo = [p for p in batch if not all(writer.done(record_key(p, pass_index, s, cfg.iteration)) for s in range(cfg.samples_per_problem))]
                skipped = len(batch) - len(todo)
                result.records_skipped += skipped * cfg.samples_per_problem
                bar.update(skipped)
                if not todo:
                    continue
                # The student samples this batch while the pool edits the last
                # one. The whole batch, even when a killed run logged part of
                # it: the same call gives the same samples (sample_seed).
                texts = sampler(batch, cfg.samples_per_problem, sample_seed(cfg.seed, cfg.iteration, pass_index, [p.id for p in batch]))
                drain(pending)
                pending = []
                for p, samples in zip(batch, texts):
                    for s, text in enumerate(samples):
                        key = record_key(p, pass_index, s, cfg.iteration)
                        if not writer.done(key):
                            pending.append((p, pool.submit(finish, p, key, s, text)))
            drain(pending)
            pending = []
            if cfg.target_usable is not None and result.usable >= cfg.target_usable:
                break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        writer.close()
        bar.close()

    result.by_kind = dict(kinds)
    result.stop_reasons = dict(reasons)
    result.teacher_rejections = dict(rejections)
    result.seconds = time.perf_counter() - t0
    if cfg.target_usable is not None and result.usable < cfg.target_usable:
        result.stopped_early = f"only {result.usable} usable trajectories after {result.passes} pass(es); target was {cfg.target_usable}"
    elif result.usable < cfg.min_usable:
        result.stopped_early = f"only {result.usable} usable trajectories (minimum {cfg.min_usable})"
    return result


__all__ = ["AttemptSampler", "CollectConfig", "CollectResult", "TeacherUnavailable", "collect", "edit_trajectory", "record_key", "teacher_unavailable"]


def student_sampler(student: Any, params: Any, prompt_format: Any = None) -> AttemptSampler:
    """An `AttemptSampler` over a loaded `tripost.student.Student`: the problem
    prompt is the one the student is trained on (tripost.student.prompt)."""
    from dataclasses import replace as _replace

    from tripost.student import build_prompts

    def sampler(problems: Sequence[Problem], n: int, seed: int) -> list[list[str]]:
        prompts = build_prompts(student.tokenizer, [p.question for p in problems], prompt_format)
        p = _replace(params, n=n if not params.greedy else 1, seed=seed)
        rows = student.sample(prompts, p)
        return [[g.text for g in row] for row in rows]

    return sampler
