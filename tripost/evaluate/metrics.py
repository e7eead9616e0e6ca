"""Scoring transcripts against gold answers, and the evaluation metrics.

Per group of problems (total, seen, unseen; and the same per task family):

- first_accuracy / final_accuracy: the first attempt's and the last written
  rationale's answers, checked by the family's `check_answer`;
- revised_rate: share of problems where the student wrote an `Updated Answer`;
- fix_rate: wrong -> right, among problems whose first attempt was wrong;
- break_rate: right -> wrong, among problems whose first attempt was right
  (TriPosT, Yu et al. 2024, Section 4 reports both directions: a student that
  "improves" by changing right answers is not improving);
- si_contribution: share of the final-correct answers that were wrong at
  first and fixed by the student's own revision, #(wrong first, right final)
  / #(right final) (TriPosT, Yu et al. 2024: the "SI. Contrib." column of
  its result tables, how much of the final accuracy self-improvement made;
  None when no final answer is right);
- improvement: final_accuracy - first_accuracy;
- per-difficulty first and final accuracy;
- 95% intervals: every metric but `improvement` is a single proportion
  (successes out of a count of problems, in `counts`) and gets the Wilson
  score interval (tripost.stats.proportion_interval; a bootstrap collapses to
  [0, 0] at 0/n); `improvement`, a difference of two proportions on the same
  problems, gets a percentile bootstrap over problems (resampled with
  replacement, seeded; first and final answers resampled together, so the
  interval accounts for their pairing).

Rates whose denominator is zero are None (JSON null), never 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tripost.stats import percentile_interval, proportion_interval, resample_index
from tripost.evaluate.selfimprove import Transcript
from tripost.format import parse_feedback, parse_rationale
from tripost.tasks.base import Problem, Task, difficulty_sort_key

CI_METRICS = ("first_accuracy", "final_accuracy", "improvement", "revised_rate", "fix_rate", "break_rate", "si_contribution")


@dataclass(frozen=True)
class EvalRecord:
    """One evaluated problem: what the student wrote and how it scored.
    `answers[i]` / `correct[i]` belong to the i-th rationale (0 = the attempt);
    `verdicts[i]` is what the student's own feedback said about it (True: the
    final response is correct, False: it named an error, None: no feedback or
    none in the feedback form) and `claimed_errors[i]` the step it blamed."""

    problem_id: str
    family: str
    subset: str
    split: str
    difficulty: str
    question: str
    gold: str
    text: str
    stop_reason: str
    stop_detail: str
    n_updates: int
    answers: list[str | None]
    correct: list[bool]
    verdicts: list[bool | None] = field(default_factory=list)
    claimed_errors: list[int | None] = field(default_factory=list)
    n_tokens: int | None = None

    @property
    def first_correct(self) -> bool:
        return self.correct[0]

    @property
    def final_correct(self) -> bool:
        return self.correct[-1]

    @property
    def revised(self) -> bool:
        return self.n_updates > 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(first_correct=self.first_correct, final_correct=self.final_correct, revised=self.revised,
                 first_answer=self.answers[0], final_answer=self.answers[-1])
        return d


def score(problem: Problem, transcript: Transcript, task: Task) -> EvalRecord:
    """Check every rationale of a transcript against the gold answer."""
    answers: list[str | None] = []
    correct: list[bool] = []
    verdicts: list[bool | None] = []
    claimed: list[int | None] = []
    for turn in transcript.turns:
        answer = task.parse_answer(turn.rationale) if turn.rationale.strip() else None
        answers.append(answer)
        correct.append(bool(answer is not None and task.check_answer(problem, answer)))
        fb = parse_feedback(turn.feedback, parse_rationale(turn.rationale).n_steps) if turn.feedback else None
        verdicts.append(fb.is_correct if fb is not None else None)
        claimed.append(fb.error_step if fb is not None else None)
    return EvalRecord(
        problem_id=problem.id, family=problem.family, subset=problem.subset, split=problem.split,
        difficulty=problem.difficulty, question=problem.question, gold=problem.answer, text=transcript.text,
        stop_reason=transcript.stop_reason, stop_detail=transcript.stop_detail, n_updates=transcript.n_updates,
        answers=answers, correct=correct, verdicts=verdicts, claimed_errors=claimed, n_tokens=transcript.n_tokens,
    )


# ------------------------------------------------------------- bootstrap ---


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


# Each statistic maps columns (first, final, revised) of shape (..., n) to (...).
_STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "first_accuracy": lambda f, l, r: f.mean(axis=-1),
    "final_accuracy": lambda f, l, r: l.mean(axis=-1),
    "improvement": lambda f, l, r: l.mean(axis=-1) - f.mean(axis=-1),
    "revised_rate": lambda f, l, r: r.mean(axis=-1),
    "fix_rate": lambda f, l, r: _ratio((~f & l).sum(axis=-1), (~f).sum(axis=-1)),
    "break_rate": lambda f, l, r: _ratio((f & ~l).sum(axis=-1), f.sum(axis=-1)),
    "si_contribution": lambda f, l, r: _ratio((~f & l).sum(axis=-1), l.sum(axis=-1)),
}


# Each single proportion as (successes, out of) from the columns (first,
# final, revised) of shape (n,): its interval is Wilson's. The rest of
# CI_METRICS (improvement, a paired difference) is bootstrapped.
_PROPORTIONS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[int, int]]] = {
    "first_accuracy": lambda f, l, r: (int(f.sum()), f.size),
    "final_accuracy": lambda f, l, r: (int(l.sum()), l.size),
    "revised_rate": lambda f, l, r: (int(r.sum()), r.size),
    "fix_rate": lambda f, l, r: (int((~f & l).sum()), int((~f).sum())),
    "break_rate": lambda f, l, r: (int((f & ~l).sum()), int(f.sum())),
    "si_contribution": lambda f, l, r: (int((~f & l).sum()), int(l.sum())),
}


# --------------------------------------------------------------- metrics ---


def _num(x: float | np.floating) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def group_metrics(records: Sequence[EvalRecord], *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, Any] | None:
    """The metrics of one group of records (None for an empty group)."""
    if not records:
        return None
    first = np.array([r.first_correct for r in records], dtype=bool)
    final = np.array([r.final_correct for r in records], dtype=bool)
    revised = np.array([r.revised for r in records], dtype=bool)
    out: dict[str, Any] = {"n": len(records)}
    for name in CI_METRICS:
        out[name] = _num(_STATISTICS[name](first, final, revised))
    out["counts"] = {
        "first_correct": int(first.sum()),
        "final_correct": int(final.sum()),
        "revised": int(revised.sum()),
        "first_wrong": int((~first).sum()),
        "fixed": int((~first & final).sum()),
        "first_right": int(first.sum()),
        "broken": int((first & ~final).sum()),
    }
    out["mean_updates"] = float(np.mean([r.n_updates for r in records]))
    out["stop_reasons"] = dict(sorted(Counter(r.stop_reason for r in records).items()))
    # Single proportions: Wilson. The rest (improvement): a bootstrap that
    # resamples problems, first and final answers together (paired).
    idx = None
    out["ci"] = {}
    for name in CI_METRICS:
        if out[name] is None:
            ci = None
        elif name in _PROPORTIONS:
            ci = proportion_interval(*_PROPORTIONS[name](first, final, revised), confidence)
        else:
            idx = resample_index(len(records), n_boot, seed) if idx is None else idx
            ci = percentile_interval(_STATISTICS[name](first[idx], final[idx], revised[idx]), confidence)
        out["ci"][name] = list(ci) if ci is not None else None
    rows: dict[tuple[str, str], list[EvalRecord]] = {}
    for r in sorted(records, key=lambda r: (r.family, difficulty_sort_key(r.difficulty))):
        rows.setdefault((r.family, r.difficulty), []).append(r)
    out["by_difficulty"] = [
        {
            "family": fam,
            "difficulty": diff,
            "n": len(rs),
            "first_accuracy": sum(r.first_correct for r in rs) / len(rs),
            "final_accuracy": sum(r.final_correct for r in rs) / len(rs),
        }
        for (fam, diff), rs in rows.items()
    ]
    return out


def compute_metrics(records: Sequence[EvalRecord], *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """Metrics for total / seen / unseen, and the same per task family."""
    kw = {"n_boot": n_boot, "seed": seed, "confidence": confidence}

    def split(rs: Sequence[EvalRecord]) -> dict[str, Any]:
        return {
            "total": group_metrics(rs, **kw),
            "seen": group_metrics([r for r in rs if r.subset == "seen"], **kw),
            "unseen": group_metrics([r for r in rs if r.subset == "unseen"], **kw),
        }

    out = split(records)
    families = list(dict.fromkeys(r.family for r in records))
    out["by_task"] = {f: split([r for r in records if r.family == f]) for f in families}
    return out
