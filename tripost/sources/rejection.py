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

Resumable like `tripost.collect.collect`: a record's key names problem,
pass, sample and iteration, and keys already in the log are skipped.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tripost.collect import AttemptSampler, CollectConfig, CollectResult, record_key, sample_seed
from tripost.errors import TripostError
from tripost.format import parse_trajectory
from tripost.log import LogRecord, LogWriter, read_log
from tripost.tasks import get_task
from tripost.tasks.base import Problem


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


def rejection_collect(
    problems: Sequence[Problem],
    sampler: AttemptSampler,
    log_path: str | Path,
    cfg: CollectConfig | None = None,
    student_info: dict[str, Any] | None = None,
    progress: bool = True,
) -> CollectResult:
    """Sample `cfg.samples_per_problem` attempts per problem (for
    `cfg.max_passes` passes) and log each as `direct` or `failed`."""
    cfg = cfg or CollectConfig()
    if not problems:
        raise TripostError("rejection: no problems")
    t0 = time.perf_counter()
    result = CollectResult(log_path=str(log_path))
    kinds: Counter = Counter()
    writer = LogWriter(log_path)
    for rec in read_log(log_path):
        if rec.iteration == cfg.iteration:
            kinds[rec.kind] += 1
    bar = tqdm(total=len(problems) * cfg.max_passes, desc=f"rejection it{cfg.iteration}", unit="problem", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        for pass_index in range(cfg.max_passes):
            result.passes = pass_index + 1
            for start in range(0, len(problems), cfg.batch_size):
                batch = list(problems[start : start + cfg.batch_size])
                todo = [p for p in batch if not all(writer.done(record_key(p, pass_index, s, cfg.iteration)) for s in range(cfg.samples_per_problem))]
                result.records_skipped += (len(batch) - len(todo)) * cfg.samples_per_problem
                if todo:
                    # The whole batch, even when a killed run logged part of
                    # it: the same call gives the same samples (sample_seed).
                    texts = sampler(batch, cfg.samples_per_problem, sample_seed(cfg.seed, cfg.iteration, pass_index, [p.id for p in batch]))
                    for p, samples in zip(batch, texts):
                        for s, text in enumerate(samples):
                            key = record_key(p, pass_index, s, cfg.iteration)
                            if writer.done(key):
                                continue
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
                bar.update(len(batch))
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


__all__ = ["judge", "judge_attempt", "rejection_collect"]
