"""The generation-verification gap: how much a model gains by filtering its
own samples with its own (or another) verifier.

Song et al. 2024, "Mind the Gap: Examining the Self-Improvement Capabilities
of Large Language Models" (arXiv:2412.02674), define self-improvement as
generate -> verify -> filter (-> distil), and measure its potential by the
generation-verification gap: the accuracy of the samples the verifier keeps
minus the accuracy of all samples. Here, for problems x_1..x_P with N samples
each, a verifier score s_ij in [0, 1] per sample and correctness c_ij in {0, 1}
(the answer of the last rationale the sample writes, against the gold answer):

    acc_all(i)  = (1/N) * sum_j c_ij
    K_i         = { j : sample j of problem i is kept by the filter }
    acc_kept(i) = (1/|K_i|) * sum_{j in K_i} c_ij            (undefined if K_i is empty)
    M           = { i : K_i non-empty and acc_all(i) < 1 }   (the measured problems)
    gap         = (1/|M|) * sum_{i in M} ( acc_kept(i) - acc_all(i) )
    rel. gap    = (1/|M|) * sum_{i in M} ( acc_kept(i) - acc_all(i) ) / ( 1 - acc_all(i) )

The per-problem terms are the paper's; both means run over the same problems
M, those where both terms are defined. A problem with nothing kept has no
acc_kept; a problem where every sample is right has a relative term 0/0.
Both are left out of both means, and counted. Counting an all-right problem
as 0 in the relative gap instead would be wrong: 0/0 is no measurement. A
verifier that keeps only right samples would then score below 1, and its
relative gap would fall as the student masters the easy problems, with no
change in the verifier. Leaving the all-right problems out of the gap as well
removes only terms that are 0 whatever the verifier does (every kept sample
is right). It changes the gap's denominator, and puts the two means over the
same problems. (Before issue 18 the gap kept them and the relative gap did
not.)

The relative gap is the share of the remaining headroom the filter recovers
(1 = it keeps only right samples, 0 = no better than taking all, negative =
worse); it is normalised per problem, as docs/design.md specifies. For comparison
with a dataset-level normalisation the result also carries
relative_gap_pooled = gap / (1 - mean of acc_all over M). acc_kept and
acc_all_where_kept are means over M too, so their difference is the gap;
acc_all is over every problem (the student's accuracy).

`metrics.excluded` says how many problems were left out of M (`n`) and why,
each problem under one reason: `none_kept` (nothing kept) or `all_right`
(something kept, every sample right); every mean says how many problems it
is over. Problems where every sample is wrong stay in M when something is
kept (their terms are 0: no filter can help there); `all_wrong` counts them
all. 95% intervals: the gap and the relative gap (means of non-binary
per-problem values) by a percentile bootstrap that resamples problems
(tripost.stats.bootstrap_interval); the accuracies likewise, except where
every per-problem accuracy is 0 or 1 (one sample per problem, or every
problem all right or all wrong): that is a single proportion of 0/1
outcomes, with the Wilson score interval (tripost.stats.proportion_interval;
the bootstrap would collapse to [0, 0] at 0/n).

Verifiers (`GapConfig.verifier`), each a score per sample; the student's own
(``mc``, ``self``, ``cot``) and the filters are tripost/verify.py's, where
the self-verified data source (tripost/sources/selfverify.py) uses them too:

- ``mc`` (after the paper's multiple-choice verification): after its own
  answer (the sample's last rationale, without any feedback the student wrote
  about it) the student is asked whether it is correct, and the score is
  p(Correct) / (p(Correct) + p(Incorrect)) from its own probabilities.
- ``self``: the student's own closing feedback in the sample: 1.0 when its
  last feedback says "The final response is also correct.", else 0.0.
- ``cot`` (after the paper's chain-of-thought verification): the student
  first writes a short verification of its last rationale (greedy, at most
  `cot_max_new_tokens` tokens), and the score is the ``mc`` score of the
  verdict word read after it.
- ``teacher``: the configured teacher's feedback on the final answer (1.0 when
  it finds no error); with the scripted teacher this is an oracle, an upper
  bound for the filter.

Filters (`GapConfig.filter`): ``quantile`` keeps, per problem, the samples
whose score is >= the ceil(q*N)-th largest score of that problem (q =
`quantile`, the share kept, default 0.5; ties at the cut are all kept, so a
verifier that scores every sample alike keeps everything and shows a gap of
exactly 0); ``threshold`` keeps the samples with score >= t (`threshold`,
default 0.5; a problem can then keep nothing).

The verifier's quality against correctness, pooled over all samples, is
reported as well: AUROC (the probability that a random right sample scores
above a random wrong one, ties counted half), and the precision and recall of
the kept set.

The loop calls `gap_for_run(student, problems, cfg, out=...)`; the CLI verb is
`tripost gap` (tripost/cli/gap_cmd.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

# The verifiers and filters live in tripost.verify (layer 4), where the
# self-verified data source can use them too; their names stay importable
# from here.
from tripost.errors import TripostError
from tripost.fileio import atomic_write_json
from tripost.stats import bootstrap_interval, proportion_interval
from tripost.student.base import StudentLike
from tripost.student.generate import DEFAULT_BATCH, SamplingParams
from tripost.student.prompt import build_prompts
from tripost.tasks import check_held_out, get_task
from tripost.tasks.base import Problem
from tripost.teachers import make_teacher
from tripost.verify import (FILTERS, VERIFIERS as STUDENT_VERIFIERS, VerifyConfig, final_rationale, keep_mask, keep_quantile,
                            keep_threshold, mc_logprobs, mc_scores, score_samples, self_score, verify_prompt)

SCHEMA = "tripost.gap/1"
VERIFIERS = (*STUDENT_VERIFIERS, "teacher")  # the student's own (tripost.verify), and the teacher


@dataclass(frozen=True)
class GapConfig:
    """How to measure the gap.

    samples: N attempts per problem, sampled at `temperature` / `top_p` with
    `max_new_tokens` each (seeded by `seed`, which also seeds the bootstrap).
    verifier / filter / quantile / threshold: see the module docstring.
    teacher: the teacher spec for the ``teacher`` verifier when no teacher
    object is passed to `measure_gap`.
    mc_template / mc_prefix / mc_words: the ``mc`` verification prompt (a file
    under prompts/), the text the student's verdict turn starts with, and the
    two verdict continuations (correct first; ``cot`` reads the same words).
    cot_template / cot_max_new_tokens: the ``cot`` prompt and the length
    bound of the verification the student writes before its verdict.
    """

    samples: int = 8
    verifier: str = "mc"
    filter: str = "quantile"
    quantile: float = 0.5
    threshold: float = 0.5
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 256
    seed: int = 0
    batch_size: int = DEFAULT_BATCH  # sequences decoded together (tripost.student.generate)
    score_batch_size: int = VerifyConfig.score_batch_size  # verification prompts per forward pass
    teacher: str = "scripted"
    # The verifiers' prompts and words: VerifyConfig's (tripost.verify), written there once.
    mc_template: str = VerifyConfig.mc_template
    mc_prefix: str = VerifyConfig.mc_prefix
    mc_words: tuple[str, str] = VerifyConfig.mc_words
    cot_template: str = VerifyConfig.cot_template
    cot_max_new_tokens: int = VerifyConfig.cot_max_new_tokens
    n_bootstrap: int = 1000
    confidence: float = 0.95
    allow_train: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.verifier not in VERIFIERS:
            raise TripostError(f"unknown verifier {self.verifier!r}; choose from {', '.join(VERIFIERS)}")
        if self.filter not in FILTERS:
            raise TripostError(f"unknown filter {self.filter!r}; choose from {', '.join(FILTERS)}")
        if self.samples < 1:
            raise TripostError(f"samples per problem must be at least 1, got {self.samples}")
        if not 0 < self.quantile <= 1:
            raise TripostError(f"quantile (the share of samples kept per problem) must be in (0, 1], got {self.quantile}")
        if not 0 <= self.threshold <= 1:
            raise TripostError(f"threshold must be in [0, 1] (scores are probabilities), got {self.threshold}")
        if self.temperature <= 0:
            raise TripostError(f"temperature must be > 0: the gap needs {self.samples} different samples per problem")
        for name in ("max_new_tokens", "batch_size", "score_batch_size", "n_bootstrap", "cot_max_new_tokens"):
            if getattr(self, name) < 1:
                raise TripostError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.confidence < 1:
            raise TripostError(f"confidence must be in (0, 1), got {self.confidence}")
        words = tuple(self.mc_words)
        if len(words) != 2 or not all(isinstance(w, str) and w for w in words) or words[0] == words[1]:
            raise TripostError(f"mc_words must be two different non-empty strings (correct, incorrect), got {self.mc_words!r}")
        object.__setattr__(self, "mc_words", words)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GapConfig":
        """From a config table (e.g. the run config's `[gap]`); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TripostError(f"unknown gap setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        d = dict(data)
        if "mc_words" in d:
            d["mc_words"] = tuple(d["mc_words"])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mc_words"] = list(self.mc_words)
        return d


# ------------------------------------------------------------------ metrics ---


@dataclass(frozen=True)
class ProblemGap:
    """One problem's terms. `acc_kept`, `gap` and `relative_gap` are None where
    undefined (nothing kept; every sample right for `relative_gap`).
    `measured`: both terms defined, so the problem counts in both means."""

    problem_id: str
    n_samples: int
    n_correct: int
    n_kept: int
    n_kept_correct: int
    acc_all: float
    acc_kept: float | None
    gap: float | None
    relative_gap: float | None

    @property
    def all_right(self) -> bool:
        return self.n_correct == self.n_samples

    @property
    def all_wrong(self) -> bool:
        return self.n_correct == 0

    @property
    def none_kept(self) -> bool:
        return self.n_kept == 0

    @property
    def measured(self) -> bool:
        return not self.none_kept and not self.all_right

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(all_right=self.all_right, all_wrong=self.all_wrong, none_kept=self.none_kept, measured=self.measured)
        return d


def problem_gap(problem_id: str, correct: Sequence[bool], kept: Sequence[bool]) -> ProblemGap:
    """acc_all, acc_kept, gap = acc_kept - acc_all and
    relative gap = gap / (1 - acc_all) of one problem (module docstring)."""
    if len(correct) != len(kept):
        raise TripostError(f"problem {problem_id}: {len(correct)} correctness flags but {len(kept)} keep flags")
    if not correct:
        raise TripostError(f"problem {problem_id} has no samples")
    n = len(correct)
    n_correct = sum(bool(c) for c in correct)
    n_kept = sum(bool(k) for k in kept)
    n_kept_correct = sum(bool(c) and bool(k) for c, k in zip(correct, kept))
    acc_all = n_correct / n
    acc_kept = n_kept_correct / n_kept if n_kept else None
    gap = acc_kept - acc_all if acc_kept is not None else None
    rel = gap / (1 - acc_all) if gap is not None and n_correct < n else None
    return ProblemGap(problem_id, n, n_correct, n_kept, n_kept_correct, acc_all, acc_kept, gap, rel)


def _mean_ci(values: Sequence[float], n_boot: int, seed: int, confidence: float, proportion: bool = False) -> dict[str, Any]:
    """{"mean", "n" (how many problems), "ci"} of per-problem values. With
    `proportion` (the values are accuracies) and every value 0 or 1, the mean
    is a single proportion of 0/1 outcomes: Wilson's interval; otherwise the
    percentile bootstrap over problems."""
    if not values:
        return {"mean": None, "n": 0, "ci": None}
    x = np.asarray(values, dtype=float)
    if proportion and bool(np.all((x == 0) | (x == 1))):
        ci = proportion_interval(int(x.sum()), len(x), confidence)
    else:
        ci = bootstrap_interval(x, n_boot=n_boot, seed=seed, confidence=confidence)
    return {"mean": float(np.mean(values)), "n": len(values), "ci": list(ci) if ci is not None else None}


def _pooled_relative(rows: Sequence[ProblemGap]) -> float | None:
    gaps = [r.gap for r in rows if r.gap is not None]
    headroom = 1 - float(np.mean([r.acc_all for r in rows])) if rows else 0.0
    return float(np.mean(gaps)) / headroom if gaps and headroom > 0 else None


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """P(score of a random positive > score of a random negative), ties half
    (the Mann-Whitney U statistic over n_pos * n_neg). None without both classes."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    # Average ranks (1-based), ties sharing the mean of their ranks.
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=float)
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def verifier_quality(scores: Sequence[float], correct: Sequence[bool], kept: Sequence[bool]) -> dict[str, Any]:
    """The verifier against correctness, pooled over all samples."""
    s = np.asarray(scores, dtype=float)
    c = np.asarray(correct, dtype=bool)
    k = np.asarray(kept, dtype=bool)
    n_kept = int(k.sum())
    return {
        "samples": int(len(s)),
        "base_rate": float(c.mean()) if len(c) else None,  # share of right samples
        "auroc": auroc(s, c),
        "precision": float((c & k).sum() / n_kept) if n_kept else None,  # share of kept samples that are right
        "recall": float((c & k).sum() / c.sum()) if c.sum() else None,  # share of right samples that are kept
        "mean_score_correct": float(s[c].mean()) if c.any() else None,
        "mean_score_wrong": float(s[~c].mean()) if (~c).any() else None,
    }


def gap_metrics(
    problem_ids: Sequence[str],
    scores: Sequence[Sequence[float]],
    correct: Sequence[Sequence[bool]],
    *,
    filter: str = "quantile",
    quantile: float = 0.5,
    threshold: float = 0.5,
    n_bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[dict[str, Any], list[ProblemGap], list[list[bool]]]:
    """The gap from per-problem scores and correctness: (metrics, per-problem
    terms, keep flags). Pure arithmetic; `measure_gap` supplies the inputs."""
    if not (len(problem_ids) == len(scores) == len(correct)):
        raise TripostError(f"{len(problem_ids)} problems, {len(scores)} score lists and {len(correct)} correctness lists")
    if not problem_ids:
        raise TripostError("no problems to measure the gap on")
    kept = [keep_mask(list(s), filter, quantile, threshold) for s in scores]
    rows = [problem_gap(pid, list(c), k) for pid, c, k in zip(problem_ids, correct, kept)]
    boot = {"n_boot": n_bootstrap, "seed": seed, "confidence": confidence}
    measured = [r for r in rows if r.measured]  # M: both terms defined (module docstring)
    flat_s = [x for s in scores for x in s]
    flat_c = [bool(x) for c in correct for x in c]
    flat_k = [x for k in kept for x in k]
    none_kept = [r.problem_id for r in rows if r.none_kept]
    all_right = [r.problem_id for r in rows if r.all_right and not r.none_kept]
    metrics = {
        "problems": len(rows),
        "samples": len(flat_s),
        "acc_all": _mean_ci([r.acc_all for r in rows], **boot, proportion=True),
        # acc_kept, acc_all_where_kept, gap and relative_gap: all over the
        # same problems M, so acc_kept - acc_all_where_kept == gap.
        "acc_kept": _mean_ci([r.acc_kept for r in measured], **boot, proportion=True),
        "acc_all_where_kept": _mean_ci([r.acc_all for r in measured], **boot, proportion=True),
        "gap": _mean_ci([r.gap for r in measured], **boot),
        "relative_gap": _mean_ci([r.relative_gap for r in measured], **boot),
        # Dataset-level normalisation, for comparison: the mean gap over the
        # mean headroom of the same problems (None when there is none).
        "relative_gap_pooled": _pooled_relative(measured),
        "kept_samples": sum(r.n_kept for r in rows),
        "kept_fraction": sum(r.n_kept for r in rows) / len(flat_s),
        # Left out of every mean but acc_all, each problem under one reason.
        "excluded": {
            "n": len(none_kept) + len(all_right),
            "none_kept": {"n": len(none_kept), "problems": none_kept},
            "all_right": {"n": len(all_right), "problems": all_right},
        },
        "all_wrong": {"n": sum(r.all_wrong for r in rows), "problems": [r.problem_id for r in rows if r.all_wrong]},
        "verifier": verifier_quality(flat_s, flat_c, flat_k),
    }
    return metrics, rows, kept


# ------------------------------------------------------------------- result ---


@dataclass(frozen=True)
class GapSample:
    sample_index: int
    text: str
    answer: str | None
    correct: bool
    score: float
    kept: bool
    n_tokens: int
    finish_reason: str
    detail: dict[str, Any] = field(default_factory=dict)  # verifier-specific: log-probs, teacher feedback

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GapResult:
    """A measurement: the configuration, what produced it, the metrics, and
    every problem's terms and samples."""

    config: GapConfig
    metrics: dict[str, Any]
    problems: list[dict[str, Any]]  # problem fields, the ProblemGap terms, and samples
    student: dict[str, Any] = field(default_factory=dict)
    teacher: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        """Everything; with `samples` False the sample texts are left out."""
        problems = self.problems if samples else [{k: v for k, v in p.items() if k != "samples"} for p in self.problems]
        return {
            "schema": SCHEMA,
            "student": self.student,
            "teacher": self.teacher,
            "config": self.config.to_dict(),
            "metrics": self.metrics,
            "problems": problems,
            "seconds": self.seconds,
        }

    def save(self, path: str | Path) -> Path:
        """Write `to_dict()` as JSON (to a temporary sibling, then renamed, so
        a crash never leaves a half-written file that looks whole)."""
        path = Path(path)
        if path.is_dir():
            raise TripostError(f"{path} is a folder; give a file name such as {path / 'gap.json'}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_json(path, self.to_dict())


def measure_gap(student: StudentLike, problems: Sequence[Problem], config: GapConfig | None = None, teacher: Any = None) -> GapResult:
    """Sample `config.samples` attempts per problem from `student` (a loaded
    `tripost.student.Student`), score each with the verifier, filter, and
    compute the gap (module docstring). Only held-out problems unless
    `config.allow_train`. `teacher` (a `tripost.teachers.Teacher`) serves the
    ``teacher`` verifier; without one `config.teacher` is built."""

    cfg = config or GapConfig()
    problems = list(problems)
    if not problems:
        raise TripostError("measure_gap: no problems")
    check_held_out(problems, cfg.allow_train)
    if len({p.id for p in problems}) != len(problems):
        raise TripostError("measure_gap: problem ids repeat; each problem must appear once")
    tasks = {f: get_task(f) for f in dict.fromkeys(p.family for p in problems)}
    if cfg.verifier == "teacher" and teacher is None:
        teacher = make_teacher(cfg.teacher)
    params = SamplingParams(n=cfg.samples, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)

    t0 = time.perf_counter()
    prompts = build_prompts(student.tokenizer, [p.question for p in problems])
    generations = student.sample(prompts, params, batch_size=cfg.batch_size, progress=cfg.progress)
    t_sample = time.perf_counter() - t0

    finals = [[final_rationale(g.text) for g in row] for row in generations]
    answers = [[tasks[p.family].parse_answer(f) if f.strip() else None for f in row] for p, row in zip(problems, finals)]
    correct = [[bool(a is not None and tasks[p.family].check_answer(p, a)) for a in row] for p, row in zip(problems, answers)]

    t1 = time.perf_counter()
    details: list[list[dict[str, Any]]] = [[{} for _ in row] for row in generations]
    if cfg.verifier in STUDENT_VERIFIERS:
        # mc and cot judge the last rationale; self reads the student's own closing feedback.
        flat = [(i, j) for i, row in enumerate(finals) for j in range(len(row))]
        flat_scores, flat_details = score_samples(student, [problems[i].question for i, _ in flat], [finals[i][j] for i, j in flat],
                                                  [generations[i][j].text for i, j in flat], cfg)
        scores = [[0.0] * len(row) for row in finals]
        for (i, j), sc, d in zip(flat, flat_scores, flat_details):
            scores[i][j] = sc
            details[i][j] = d
    else:
        items = [(p, f) for p, row in zip(problems, finals) for f in row]
        many = getattr(teacher, "feedback_many", None)
        replies = many(items) if callable(many) else [teacher.feedback(p, f) for p, f in items]
        it = iter(replies)
        scores = []
        for i, row in enumerate(finals):
            srow = []
            for j in range(len(row)):
                reply = next(it)
                fb = reply.feedback
                srow.append(1.0 if fb is not None and fb.is_correct else 0.0)
                details[i][j] = {"teacher_feedback": reply.text, "rejected": reply.rejected}
            scores.append(srow)
    t_verify = time.perf_counter() - t1

    metrics, rows, kept = gap_metrics(
        [p.id for p in problems], scores, correct, filter=cfg.filter, quantile=cfg.quantile, threshold=cfg.threshold,
        n_bootstrap=cfg.n_bootstrap, seed=cfg.seed, confidence=cfg.confidence,
    )
    out_problems = []
    for i, (p, row) in enumerate(zip(problems, rows)):
        samples = [
            GapSample(
                sample_index=g.sample_index, text=g.text, answer=answers[i][j], correct=correct[i][j], score=scores[i][j],
                kept=kept[i][j], n_tokens=g.n_tokens, finish_reason=g.finish_reason, detail=details[i][j],
            ).to_dict()
            for j, g in enumerate(generations[i])
        ]
        out_problems.append({
            "family": p.family, "subset": p.subset, "split": p.split, "difficulty": p.difficulty,
            "question": p.question, "gold": p.answer, **row.to_dict(), "samples": samples,
        })
    describe = getattr(student, "describe", None)
    return GapResult(
        config=cfg,
        metrics=metrics,
        problems=out_problems,
        student=describe() if callable(describe) else {"student": type(student).__name__},
        teacher=getattr(teacher, "name", None) if cfg.verifier == "teacher" else None,
        seconds={"sample": round(t_sample, 3), "verify": round(t_verify, 3), "total": round(time.perf_counter() - t0, 3)},
    )


def gap_for_run(student: StudentLike, problems: Sequence[Problem], cfg: GapConfig | Mapping[str, Any] | None = None, *, teacher: Any = None,
                out: str | Path | None = None, per_problem: bool = False) -> dict[str, Any]:
    """What the loop's gap stage and `tripost gap` both call: measure the
    gap, write the full result to `out` (e.g. RUN/itT/gap/gap.json) when
    given, and return its summary: metrics and config, with the file written
    (`file`), without the samples; with `per_problem`, each problem's terms
    too (what `tripost gap` prints). `cfg` may be a `GapConfig` or its dict
    form (the run config's table)."""
    config = cfg if isinstance(cfg, GapConfig) else GapConfig.from_dict(cfg or {})
    result = measure_gap(student, problems, config, teacher=teacher)
    summary = result.to_dict(samples=False)
    if not per_problem:
        summary.pop("problems")
    if out is not None:
        summary["file"] = str(result.save(out))
    return summary


__all__ = [
    "FILTERS",
    "SCHEMA",
    "VERIFIERS",
    "GapConfig",
    "GapResult",
    "GapSample",
    "ProblemGap",
    "auroc",
    "final_rationale",
    "gap_for_run",
    "gap_metrics",
    "keep_mask",
    "keep_quantile",
    "keep_threshold",
    "mc_logprobs",
    "mc_scores",
    "measure_gap",
    "problem_gap",
    "self_score",
    "verifier_quality",
    "verify_prompt",
]
