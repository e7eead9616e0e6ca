"""Evaluation: accuracy with test-time self-improvement, and honest metrics.

    from tripost.evaluate import EvalConfig, evaluate
    result = evaluate(student, problems, EvalConfig(max_turns=3))
    result.save("eval.json")          # + eval.transcripts.jsonl beside it
    result.metrics["total"]["final_accuracy"]

`student` is a loaded `tripost.student.Student`, a `GenerationBackend`, or a
plain `GenerateFn` (see selfimprove.py). Only held-out problems are evaluated:
a problem of the train split is refused unless `allow_train` is set.

Pieces: stop.py (when self-improvement stops, from the text alone),
selfimprove.py (batched greedy self-improvement), metrics.py (scoring against
the gold answers, rates, Wilson intervals, a paired bootstrap for the improvement).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tripost.errors import TripostError
from tripost.evaluate.journal import CallJournal, JournalMismatch, check_journal, files_identity, journal_path
from tripost.evaluate.metrics import EvalRecord, compute_metrics, group_metrics, score
from tripost.evaluate.selfimprove import (GenerateFn, Piece, PromptFn, TURN_MODES, Transcript, plain_prompt, run_self_improvement,
                                          run_self_improvement_batch, student_generate_fn, student_prompt_fn)
from tripost.evaluate.stop import STOP_REASONS, StopDecision, decide_stop, loops
from tripost.fileio import atomic_write_json, atomic_write_text
from tripost.paths import beside
from tripost.stats import bootstrap_interval
from tripost.student.base import StudentLike
from tripost.student.generate import DEFAULT_BATCH, GenerationBackend
from tripost.student.load import Student
from tripost.tasks import check_held_out, get_task  # check_held_out re-exported: it lives with problem selection
from tripost.tasks.base import Problem

SCHEMA = "tripost.eval/1"


@dataclass(frozen=True)
class EvalConfig:
    # These defaults are also the run config's [eval] section and the flags of
    # `tripost eval`. 2 updates by default: the authors allow up to 10
    # attempts (jasonyux/TriPosT models/self_improve/base.py:130,
    # num_attempts), but every turn costs two more greedy pieces (feedback,
    # update) for each problem still revising; a student that stops revising
    # stops early either way, so raising it costs only where it revises.
    max_turns: int = 2  # updates the student may write after its attempt
    # single: each piece is written after the question and the last answer
    # only (the authors' test-time re-prompting; what single-turn training
    # teaches); whole: after the whole transcript so far.
    turns: str = "single"
    max_new_tokens: int = 192  # per generated piece (attempt, feedback or update)
    batch_size: int = DEFAULT_BATCH  # sequences decoded together (tripost.student.generate)
    force_feedback: bool = True  # ask for feedback even when the student ended its text
    n_bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0  # of the bootstrap resamples (decoding is greedy)
    allow_train: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_turns < 0:
            raise TripostError(f"max_turns must be >= 0, got {self.max_turns}")
        if self.turns not in TURN_MODES:
            raise TripostError(f"turns must be one of {', '.join(TURN_MODES)}, not {str(self.turns)[:40]!r}")
        for name in ("max_new_tokens", "batch_size", "n_bootstrap"):
            if getattr(self, name) < 1:
                raise TripostError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.confidence < 1:
            raise TripostError(f"confidence must be in (0, 1), got {self.confidence}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvalResult:
    records: list[EvalRecord]
    metrics: dict[str, Any]
    config: EvalConfig
    student: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """Everything but the transcripts: what goes into the JSON file."""
        splits = Counter(r.split for r in self.records)
        return {
            "schema": SCHEMA,
            "student": self.student,
            "config": self.config.to_dict(),
            "problems": {
                "n": len(self.records),
                "families": list(dict.fromkeys(r.family for r in self.records)),
                "splits": dict(sorted(splits.items())),
            },
            "metrics": self.metrics,
            "generation": self.generation,
            "seconds": round(self.seconds, 3),
        }

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write the summary JSON to `path` and the transcripts, one JSON line
        each, beside it (`NAME.transcripts.jsonl`). Written to temporary files
        and renamed, so a crash never leaves a half-written result that looks whole."""
        path = Path(path)
        transcripts = transcripts_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        summary = self.summary()
        summary["transcripts"] = transcripts.name
        atomic_write_text(transcripts, "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in self.records))
        atomic_write_json(path, summary)
        return path, transcripts


def transcripts_path(path: str | Path) -> Path:
    return beside(path, ".transcripts.jsonl")


def eval_fingerprint(cfg: EvalConfig, problems: Sequence[Problem], student: dict[str, Any] | None = None) -> dict[str, Any]:
    """What decides an evaluation's text, for its journal (journal.py): the
    generation settings, the problems, and (once loaded) the student's
    description and its weights' files. Without `student`, the part a
    command can check before it loads the student."""
    fp: dict[str, Any] = {
        "generation": {k: v for k, v in cfg.to_dict().items() if k in ("max_turns", "turns", "max_new_tokens", "batch_size", "force_feedback")},
        "problems": hashlib.sha256(json.dumps([[p.id, p.question] for p in problems], ensure_ascii=False).encode("utf-8")).hexdigest(),
    }
    if student is not None:
        fp["student"] = student
        fp["weights"] = files_identity(student.get("adapter") or student.get("source_dir"))
    return fp


def evaluate(
    student: StudentLike | GenerationBackend | GenerateFn,
    problems: Sequence[Problem],
    config: EvalConfig | None = None,
    *,
    prompt_fn: PromptFn | None = None,
    journal: str | Path | None = None,
) -> EvalResult:
    """Greedy attempt + test-time self-improvement on every problem, scored
    against the gold answers. `student`: a `Student`, a `GenerationBackend` or
    a `GenerateFn`. `prompt_fn` defaults to the student's own prompt
    (student/prompt.py, through its chat template when it has one).
    `journal`: a file that journals every generate call (journal.py), so an
    evaluation killed part way resumes from it with the same result; the
    caller deletes it once the result is saved."""
    cfg = config or EvalConfig()
    if not problems:
        raise TripostError("evaluate: no problems")
    check_held_out(problems, cfg.allow_train)
    tasks = {f: get_task(f) for f in dict.fromkeys(p.family for p in problems)}
    info: dict[str, Any] = {}
    generate_fn: GenerateFn

    if not isinstance(student, (Student, GenerationBackend)):
        if not callable(student):
            raise TripostError(f"evaluate: cannot generate with a {type(student).__name__}; pass a Student, a GenerationBackend or a generate function")
        generate_fn = student
        info = {"student": getattr(student, "__name__", type(student).__name__)}
    else:
        generate_fn = student_generate_fn(student, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)
        tokenizer = getattr(student, "tokenizer", None) or getattr(getattr(student, "student", None), "tokenizer", None)
        if prompt_fn is None and tokenizer is not None:
            prompt_fn = student_prompt_fn(tokenizer)
        describe = getattr(student, "describe", None)
        info = describe() if callable(describe) else {"student": type(student).__name__}
    calls = None
    if journal is not None:
        calls = CallJournal(journal, eval_fingerprint(cfg, problems, info))
        generate_fn = calls.wrap(generate_fn)
    t0 = time.perf_counter()
    transcripts = run_self_improvement_batch(
        problems, generate_fn, cfg.max_turns, prompt_fn=prompt_fn or plain_prompt,
        force_feedback=cfg.force_feedback, batch_size=cfg.batch_size, progress=cfg.progress, turns=cfg.turns,
    )
    gen_seconds = time.perf_counter() - t0
    records = [score(p, t, tasks[p.family]) for p, t in zip(problems, transcripts)]
    metrics = compute_metrics(records, n_boot=cfg.n_bootstrap, seed=cfg.seed, confidence=cfg.confidence)
    tokens = [t.n_tokens for t in transcripts]
    n_tokens = None if any(n is None for n in tokens) else sum(n for n in tokens if n is not None)
    generation = {
        "pieces": sum(len(t.pieces) for t in transcripts),
        "tokens": n_tokens,
        "seconds": round(gen_seconds, 3),
        "tokens_per_s": round(n_tokens / gen_seconds, 2) if n_tokens and gen_seconds > 0 else None,
    }
    if calls is not None and calls.replayed:
        # Resumed: the tokens count every piece, the seconds only those generated now.
        generation["replayed_calls"] = calls.replayed
        generation["tokens_per_s"] = None
    return EvalResult(records=records, metrics=metrics, config=cfg, student=info, generation=generation, seconds=time.perf_counter() - t0)


__all__ = [
    "CallJournal",
    "JournalMismatch",
    "check_journal",
    "eval_fingerprint",
    "SCHEMA",
    "STOP_REASONS",
    "EvalConfig",
    "EvalRecord",
    "EvalResult",
    "GenerateFn",
    "Piece",
    "StopDecision",
    "Transcript",
    "bootstrap_interval",
    "check_held_out",
    "compute_metrics",
    "decide_stop",
    "evaluate",
    "group_metrics",
    "loops",
    "plain_prompt",
    "run_self_improvement",
    "run_self_improvement_batch",
    "score",
    "student_generate_fn",
    "student_prompt_fn",
    "journal_path",
    "transcripts_path",
]
