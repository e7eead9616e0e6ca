"""Self-verified data: the student's own samples, kept or weighed by its own verifier.

Song et al. 2024, "Mind the Gap: Examining the Self-Improvement Capabilities
of Large Language Models" (arXiv:2412.02674), describe self-improvement as
generate -> verify -> filter -> distil, with the model's own verifier and no
gold answer: the model can improve this way only as far as it verifies
better than it generates (the generation-verification gap, tripost/gap.py,
measures how far). This source is that loop's data step. For each training
problem:

1. sample N = `samples` attempts (seeded by the batch, like every source);
2. score each attempt with the student's own verifier (tripost/verify.py:
   ``mc``, its p(Correct) after the attempt; ``self``, its own feedback on
   the attempt; ``cot``, its p(Correct) after a verification it wrote);
3. mode ``filter``: keep the attempts `keep_mask` keeps (the ``quantile``
   filter per problem, or the ``threshold`` filter) as `direct` records, and
   log the rest as `failed` records, so the log shows what the verifier
   dropped; mode ``reweight``: keep every attempt as a `direct` record whose
   `weight` is its score normalised per problem (below), so the loss counts
   each attempt as much as the student believes it against its other
   attempts at the same problem (the buffer carries the weight into the
   example, and training multiplies the example's loss by it when
   `train.use_example_weight` is on, which a run with this mode requires).

The reweighting is the paper's reweighted distribution, one per prompt:
f[w](y|x) proportional to f(y|x) * w(x, y), normalised over the responses to
each prompt x (the generation-verification gap compares this distribution
with f itself, prompt by prompt). With N samples y_1..y_N of f for a problem
x, the self-normalised estimate of f[w] gives sample j the mass
s_j / sum_k s_k, s the verifier's scores over the K non-empty samples (the
empty ones are never kept). Training on it, sample j's example weight is
that mass times K:

    weight_j = K * s_j / sum_k s_k         (they sum to K: a mean of 1)

so a problem's attempts together weigh what K unweighted examples (or gold
examples, weight 1) weigh, and within the problem each counts in proportion
to its score. The loss divides by the number of target tokens, not their
weight (tripost.train), so a weight below 1 does train less. The raw scores
alone would also weigh problems against each other by how much the student
believes its answers there (a problem it doubts would train less than one
it is sure of), which f[w] does not do: every prompt keeps its own share. A
problem whose scores are all 0 has no f[w] (the verifier believes none of
its attempts): its attempts weigh 0. Each pass's N samples of a problem are
normalised together (a pass is one draw of N from f).

No gold answer keeps or weighs anything: the verifier sees the question and
the attempt only. Every record is `checked=False` (no check stands behind
it), so the buffer keeps a `direct` one whether it is right or not and trains
it as the attempt alone, without the closing "also correct" verdict nothing
made (tripost/buffer.py). The attempt is the sample's first rationale, which
is also what the verifier judged (``self`` reads the feedback on that first
rationale): what the student wrote after it is neither judged nor trained.
`final_correct` is the gold check of that attempt, for reporting only (how
often the verifier kept a right attempt); nothing reads it to decide.

Records: `source="self_verified"`, the verifier's score in
`turns[0]["verifier_score"]` and what it came from in
`turns[0]["verifier_detail"]` (log-probabilities, the cot verification).
It runs on the collection template (tripost.sources.template,
`SelfVerifiedLoop`: its keys, its seeds and `make_records` are its own).
Resumable like every source: a record's key names problem, verifier, mode,
pass, sample and iteration; a batch that the log does not hold in full is
sampled and scored whole again with the same seed, so the filter sees the
same N scores and the resumed records equal the ones an uninterrupted run
would have written. The summary counts the records already in the log too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tripost.errors import TripostError
from tripost.format import Trajectory, parse_trajectory
from tripost.log import LogRecord
from tripost.settings import view
from tripost.sources.base import AttemptSampler, Job, SamplingSource, SourceResult, batch_seed, judge, student_sampler
from tripost.sources.settings import VERIFY_MODES as MODES
from tripost.sources.settings import CollectSettings
from tripost.sources.template import Batch, CollectionLoop
from tripost.student.generate import DEFAULT_BATCH
from tripost.tasks.base import Problem
from tripost.verify import FILTERS, VERIFIERS, VerifyConfig, keep_mask, score_samples
from tripost.student.base import StudentLike

SOURCE = "self_verified"


class Scorer(Protocol):
    """The verifier: a score in [0, 1] and its detail per attempt, from the
    questions, the attempts and the attempts as the student wrote them (with
    its own feedback, for ``self``). No gold answer is passed."""

    def __call__(self, questions: Sequence[str], attempts: Sequence[str], texts: Sequence[str]) -> tuple[list[float], list[dict[str, Any]]]:
        ...


@dataclass(frozen=True)
class SelfVerifyConfig:
    """How the source samples, verifies and keeps (module docstring)."""

    # Defaults: the [collect] keys these hold (tripost/sources/settings.py, `view`).
    samples: int = view(CollectSettings, "samples_per_problem")
    verifier: str = view(CollectSettings, "verify_verifier")
    mode: str = view(CollectSettings, "verify_mode")
    filter: str = view(CollectSettings, "verify_filter")
    quantile: float = view(CollectSettings, "verify_quantile")
    threshold: float = view(CollectSettings, "verify_threshold")
    passes: int = view(CollectSettings, "max_passes")
    batch_size: int = view(CollectSettings, "batch_size")  # problems per sampler call
    iteration: int = 0
    seed: int = 0
    config_hash: str = ""

    def __post_init__(self) -> None:
        if self.verifier not in VERIFIERS:
            raise TripostError(f"unknown verifier {self.verifier!r}; choose from {', '.join(VERIFIERS)}")
        if self.mode not in MODES:
            raise TripostError(f"unknown self-verified mode {self.mode!r}; choose from {', '.join(MODES)}")
        if self.filter not in FILTERS:
            raise TripostError(f"unknown filter {self.filter!r}; choose from {', '.join(FILTERS)}")
        for name in ("samples", "passes", "batch_size"):
            if getattr(self, name) < 1:
                raise TripostError(f"self-verified {name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.quantile <= 1:
            raise TripostError(f"self-verified quantile (the share of samples kept per problem) must be in (0, 1], got {self.quantile}")
        if not 0 <= self.threshold <= 1:
            raise TripostError(f"self-verified threshold must be in [0, 1] (scores are probabilities), got {self.threshold}")

    def describe(self) -> dict[str, Any]:
        """What the records' `student["self_verified"]` says about how they were kept."""
        d: dict[str, Any] = {"verifier": self.verifier, "mode": self.mode, "samples": self.samples}
        if self.mode == "filter":
            d["filter"] = self.filter
            d[self.filter] = self.quantile if self.filter == "quantile" else self.threshold
        return d


def self_verified_key(problem: Problem, cfg: SelfVerifyConfig, pass_index: int, sample_index: int) -> str:
    """The log key of one sample (its own name space: the rejection source's keys differ)."""
    return f"{problem.id}#{SOURCE}-{cfg.verifier}-{cfg.mode}-p{pass_index}s{sample_index}@it{cfg.iteration}"


def student_scorer(student: StudentLike, verifier: str, *, batch_size: int = DEFAULT_BATCH) -> Scorer:
    """A `Scorer` over a loaded student: tripost.verify's `score_samples`."""
    vcfg = VerifyConfig(verifier=verifier, batch_size=batch_size)

    def scorer(questions: Sequence[str], attempts: Sequence[str], texts: Sequence[str]) -> tuple[list[float], list[dict[str, Any]]]:
        return score_samples(student, questions, attempts, texts, vcfg)

    return scorer


def first_turn(text: str) -> str:
    """The sample cut after its first rationale and the feedback on it: what
    ``self`` reads, so its verdict is about the attempt that is trained."""
    turns = parse_trajectory(text).turns
    return Trajectory(turns=turns[:1]).render() if turns else text


@dataclass
class SelfVerifiedResult(SourceResult):
    """The common summary, plus what the verifier did. `*_correct` are gold
    checks, for reporting only: nothing was kept or weighed by them."""

    samples: int = 0  # logged (written or already there)
    kept: int = 0  # direct records: kept by the filter, or every non-empty sample when reweighting
    dropped: int = 0  # failed records: dropped by the filter, or empty attempts
    correct: int = 0  # samples whose attempt is right
    kept_correct: int = 0  # kept samples whose attempt is right
    weight_sum: float = 0.0  # total weight of the kept records (reweight: K per problem and pass, K its non-empty samples)
    score_sum: float = 0.0  # total verifier score over all samples

    @property
    def kept_precision(self) -> float | None:
        return self.kept_correct / self.kept if self.kept else None

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "kept_precision": self.kept_precision}


class SelfVerifiedLoop(CollectionLoop):
    """Self-verified data on the collection template (tripost.sources.template):
    a batch's records come from all of its samples at once, since the filter
    ranks a problem's N scores together (`make_records`)."""

    result: SelfVerifiedResult  # the summary this source fills
    name = SOURCE
    label = "self-verified"

    def __init__(self, problems: Sequence[Problem], sampler: AttemptSampler, scorer: Scorer, log_path: str | Path, cfg: SelfVerifyConfig,
                 student_info: dict[str, Any] | None, progress: bool, on_record: Callable[[LogRecord], None] | None) -> None:
        super().__init__(problems, log_path, SelfVerifiedResult(log_path=str(log_path)), iteration=cfg.iteration, seed=cfg.seed,
                         samples=cfg.samples, passes=cfg.passes, batch_size=cfg.batch_size, progress=progress, on_record=on_record)
        self.sampler, self.scorer, self.cfg = sampler, scorer, cfg
        self.info = {**(student_info or {}), SOURCE: cfg.describe()}

    def key(self, problem: Problem, pass_index: int, index: int) -> str:
        return self_verified_key(problem, self.cfg, pass_index, index)

    def seed(self, problem_ids: Sequence[str], pass_index: int) -> int:
        return batch_seed(problem_ids, SOURCE, self.cfg.seed, self.cfg.iteration, pass_index)

    def count(self, rec: LogRecord, written: bool) -> None:
        result = self.result
        result.samples += 1
        result.correct += rec.final_correct
        result.score_sum += rec.turns[0]["verifier_score"]
        if rec.kind == "direct":
            result.kept += 1
            result.kept_correct += rec.final_correct
            result.weight_sum += rec.weight
        else:
            result.dropped += 1

    def make_records(self, batch: Batch) -> list[LogRecord]:
        """Every sample of the batch as a record: judged (for reporting), verified, kept by mode."""
        cfg, problems, texts = self.cfg, batch.problems, batch.drawn
        if len(texts) != len(problems) or any(len(row) != cfg.samples for row in texts):
            raise TripostError(f"self_verified: the sampler gave {[len(r) for r in texts]} samples for {len(problems)} problems, "
                               f"{cfg.samples} each expected (greedy sampling gives one: use a temperature above 0)")
        judged = [[judge(p, t) for t in row] for p, row in zip(problems, texts)]
        # Empty attempts are never trained and not worth a verifier call: score 0.
        flat = [(i, j) for i, row in enumerate(judged) for j, (attempt, _, _) in enumerate(row) if attempt.strip()]
        got, details = self.scorer([problems[i].question for i, _ in flat], [judged[i][j][0] for i, j in flat],
                                   [first_turn(texts[i][j]) for i, j in flat])
        scores = [[0.0] * cfg.samples for _ in problems]
        detail: list[list[dict[str, Any]]] = [[{} for _ in range(cfg.samples)] for _ in problems]
        for (i, j), s, d in zip(flat, got, details):
            scores[i][j], detail[i][j] = float(s), d
        out = []
        for i, p in enumerate(problems):
            kept = keep_mask(scores[i], cfg.filter, cfg.quantile, cfg.threshold) if cfg.mode == "filter" else [True] * cfg.samples
            weights = problem_weights(scores[i], [bool(a.strip()) for a, _, _ in judged[i]]) if cfg.mode == "reweight" else [1.0] * cfg.samples
            for j, (attempt, answer, right) in enumerate(judged[i]):
                empty = not attempt.strip()
                keep = kept[j] and not empty
                if empty:
                    reason = "empty attempt"
                elif cfg.mode == "reweight":
                    reason = f"weighed by {cfg.verifier}"
                else:
                    reason = f"{'kept' if keep else 'dropped'} by {cfg.verifier} ({cfg.filter})"
                turn = {"rationale": attempt, "feedback": None, "source": "student", "answer": answer,
                        "verifier_score": scores[i][j], "verifier_detail": detail[i][j]}
                out.append(LogRecord(
                    key=batch.keys[i][j], problem=p.to_dict(), kind="direct" if keep else "failed", turns=[turn],
                    final_correct=right,  # the gold check, for reporting only: nothing below reads it
                    stop_reason=reason, sample_index=j, iteration=cfg.iteration, seed=cfg.seed, config_hash=cfg.config_hash,
                    student={**self.info, SOURCE: {**self.info[SOURCE], "pass": batch.pass_index}}, source=SOURCE, checked=False,
                    weight=weights[j],
                ))
        return out


def self_verified_collect(
    problems: Sequence[Problem],
    sampler: AttemptSampler,
    scorer: Scorer,
    log_path: str | Path,
    cfg: SelfVerifyConfig | None = None,
    student_info: dict[str, Any] | None = None,
    progress: bool = True,
    on_record: Callable[[LogRecord], None] | None = None,
) -> SelfVerifiedResult:
    """`cfg.samples` attempts per problem (for `cfg.passes` passes), each
    scored by `scorer`, logged as `direct` or `failed` by `cfg.mode` (module
    docstring; `SelfVerifiedLoop`)."""
    return SelfVerifiedLoop(problems, sampler, scorer, log_path, cfg or SelfVerifyConfig(), student_info, progress, on_record).run()


def problem_weights(scores: Sequence[float], non_empty: Sequence[bool]) -> list[float]:
    """One problem's reweight-mode example weights (module docstring): over
    its K non-empty samples, K * s_j / sum_k s_k, which sum to K; 0 for an
    empty sample, and for every sample when all K scores are 0."""
    k = sum(bool(x) for x in non_empty)
    total = sum(s for s, ok in zip(scores, non_empty) if ok)
    if k == 0 or total <= 0:
        return [0.0] * len(scores)
    return [k * s / total if ok else 0.0 for s, ok in zip(scores, non_empty)]


class SelfVerifiedSource(SamplingSource):
    """Self-verified data as a registered source (`self_verified_collect`)."""

    name = SOURCE
    needs_teacher = False

    @classmethod
    def from_settings(cls, s: Any, teacher_concurrency: int) -> "SelfVerifiedSource":
        return cls(SelfVerifyConfig(samples=s.samples_per_problem, verifier=s.verify_verifier, mode=s.verify_mode, filter=s.verify_filter,
                                    quantile=s.verify_quantile, threshold=s.verify_threshold, passes=s.max_passes, batch_size=s.batch_size),
                   s.sampling_params())

    def collect(self, job: Job, student: StudentLike, teacher: Any | None = None) -> SourceResult:
        cfg = self.job_config(job)
        return self_verified_collect(job.problems, student_sampler(student, self.job_params(job)),
                                     student_scorer(student, cfg.verifier, batch_size=cfg.batch_size), job.log_path, cfg,
                                     student_info=job.student_info, progress=job.progress, on_record=job.on_record)


__all__ = [
    "MODES",
    "Scorer",
    "SelfVerifiedLoop",
    "SelfVerifiedResult",
    "SelfVerifiedSource",
    "SelfVerifyConfig",
    "first_turn",
    "problem_weights",
    "self_verified_collect",
    "self_verified_key",
    "student_scorer",
]
