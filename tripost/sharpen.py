"""Sharpening: the student's own likelihood as its reward (Huang et al. 2024).

Huang, Block, Foster, Rohatgi, Zhang, Simchowitz, Ash, Krishnamurthy,
"Self-Improvement in Language Models: The Sharpening Mechanism" (2024; ICLR
2025). A model is often a better verifier than generator: among N of its own
samples, the one it finds most likely is more often right than a random one.
Selecting that sample at inference time is best-of-N sharpening; training on
the selected samples (SFT-sharpening) moves the model toward its own
high-likelihood answers, with no teacher and no gold answer.

Rewards, for a response y to prompt x (y is the attempt only: text from a
`Feedback:` line on is cut off, and the attempt is scored as a complete
response, its end-of-sequence token included, see `SharpenConfig`):

    logprob       r(y) = log pi(y | x) = sum_t log pi(y_t | x, y_<t)
                  (the paper's maximum-likelihood sharpening objective)
    mean_logprob  r(y) = log pi(y | x) / |y|   (length-normalised: the sum
                  favours short responses)
    majority      the most common parsed final answer among the N (self-
                  consistency, Wang et al. 2023; the paper's "majority" self-
                  reward); ties between answers go to the answer whose best
                  sample has the higher mean_logprob, and the chosen sample is
                  that best sample. A response with no parseable answer never
                  outvotes one with an answer.

Remaining ties go to the lower sample index, so selection is a function of the
candidates alone. An empty attempt scores -inf under both likelihood rewards:
it is never preferred while anything else is on offer.

Best-of-N accuracy as a function of N (`accuracy_vs_n`) draws M = max(ns)
samples per problem once, scores them once, and computes for each N the
expected accuracy of best-of-N over a uniformly random size-N subset of the M:

- likelihood rewards, exactly: sort the M samples by (reward desc, index asc);
  the sample at rank k (0-based) is the choice of a random N-subset iff it is
  in the subset and the other N-1 members all rank below it, so

      E[acc_N] = sum_k c_(k) * C(M-1-k, N-1) / C(M, N)

  (c_(k) is 1 when the rank-k sample is correct; the weights sum to 1 by the
  hockey-stick identity);
- majority, by enumerating every N-subset when there are at most
  `max_subsets` of them, else by averaging over `max_subsets` random subsets;
- oracle (any correct; pass@N, the unbiased estimator of Chen et al. 2021):
  1 - C(M-c, N) / C(M, N) for c correct samples among M;
- single sample: c / M, which is also best-of-1 under every reward.

The accuracy of a group is the mean over problems; its 95% interval is a
percentile bootstrap over problems (tripost.stats), and the gain
over a single sample is bootstrapped on the same resamples (paired).

SFT-sharpening as a data source lives in tripost/sources/sharpen.py: it uses
`draw_candidates` and `best_of_n` from here.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tripost.errors import TripostError
from tripost.fileio import atomic_write_json, atomic_write_text
from tripost.format import parse_trajectory
from tripost.paths import beside
from tripost.settings import view
from tripost.sources.settings import REWARDS, SHARPEN_DEFAULTS, CollectSettings
from tripost.stats import bootstrap_interval
from tripost.student import build_prompts
from tripost.student.generate import SamplingParams
from tripost.tasks import check_held_out, get_task
from tripost.tasks.base import Problem
from tripost.student.base import StudentLike

DEFAULT_NS = (1, 2, 4, 8, 16)
DEFAULT_MAX_SUBSETS = 2000  # majority: enumerate up to this many size-N subsets, else average as many random ones
DEFAULT_BOOTSTRAP = 1000  # bootstrap resamples of the intervals
FEEDBACK_STOP = "\nFeedback:"


@dataclass(frozen=True)
class SharpenConfig:
    """How candidates are drawn and chosen.

    samples: N, candidates per problem (the data path; `accuracy_vs_n` draws
    max(ns) instead). reward: one of REWARDS. append_eos: score the attempt as
    a complete response (its end-of-sequence token included), so a truncated
    attempt pays for an ending it did not write. Sampling stops at a
    `Feedback:` line: a trained student writes its own feedback after its
    attempt, and only the attempt is a candidate."""

    # Defaults: the [collect] keys these hold (tripost/sources/settings.py),
    # with best-of-N's own overrides declared there (SHARPEN_DEFAULTS).
    samples: int = view(CollectSettings, "samples_per_problem", override=SHARPEN_DEFAULTS)
    reward: str = view(CollectSettings, "sharpen_reward", override=SHARPEN_DEFAULTS)
    temperature: float = view(CollectSettings, "temperature", override=SHARPEN_DEFAULTS)
    top_p: float = view(CollectSettings, "top_p", override=SHARPEN_DEFAULTS)
    max_new_tokens: int = view(CollectSettings, "max_new_tokens", override=SHARPEN_DEFAULTS)
    batch_size: int = view(CollectSettings, "batch_size")  # sequences sampled together (tripost.student.generate)
    score_batch_size: int = 8  # sequences scored together
    append_eos: bool = True

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise TripostError(f"samples per problem must be at least 1, got {self.samples}")
        check_reward(self.reward)
        if self.batch_size < 1 or self.score_batch_size < 1:
            raise TripostError("batch sizes must be at least 1")
        self.sampling_params(self.samples, 0)  # checks temperature, top_p, max_new_tokens

    def sampling_params(self, n: int, seed: int) -> SamplingParams:
        return SamplingParams(n=n, temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens, stop=(FEEDBACK_STOP,), seed=seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_reward(reward: str) -> str:
    if reward not in REWARDS:
        raise TripostError(f"unknown reward {reward!r}; choose from {', '.join(REWARDS)}")
    return reward


def parse_rewards(text: str | Sequence[str]) -> list[str]:
    """`all`, one reward, a comma list, or a sequence -> checked reward names."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    if names == ["all"]:
        return list(REWARDS)
    if not names:
        raise TripostError("no reward given; choose from " + ", ".join(REWARDS) + " or all")
    return list(dict.fromkeys(check_reward(n) for n in names))


def parse_ns(text: str | Sequence[int]) -> list[int]:
    """`1,2,4,8,16` -> sorted distinct positive sample counts."""
    if isinstance(text, str):
        try:
            values = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise TripostError(f"--ns must be positive integers separated by commas, like 1,2,4,8,16; got {text!r}") from None
    else:
        values = [int(x) for x in text]
    if not values or any(v < 1 for v in values):
        raise TripostError(f"--ns must be positive integers separated by commas, like 1,2,4,8,16; got {text!r}")
    return sorted(set(values))


# ------------------------------------------------------------ candidates ---


@dataclass(frozen=True)
class Candidate:
    """One sampled attempt with its self-scores. `correct` is checked against
    the gold answer: for reporting only, never for choosing."""

    text: str
    logprob: float
    mean_logprob: float
    n_tokens: int = 0  # scored tokens (the end-of-sequence token included when appended)
    answer: str | None = None
    correct: bool = False
    finish_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("logprob", "mean_logprob"):
            d[k] = d[k] if math.isfinite(d[k]) else None  # JSON has no -inf
        return d


def attempt_of(text: str) -> str:
    """The attempt in a student output: everything before its first
    `Feedback:` or `Updated Answer:` line, stripped."""
    turns = parse_trajectory(text).turns
    return turns[0].rationale if turns else ""


def reward_values(candidates: Sequence[Candidate], reward: str) -> np.ndarray:
    """The per-candidate score of a likelihood reward (majority is not a per-candidate score)."""
    if reward == "logprob":
        return np.array([c.logprob for c in candidates], dtype=float)
    if reward == "mean_logprob":
        return np.array([c.mean_logprob for c in candidates], dtype=float)
    check_reward(reward)
    raise TripostError("majority has no per-candidate score; use best_of_n")


def majority_choice(answers: Sequence[str | None], mean_logprobs: Sequence[float]) -> int:
    """Index of the majority pick: each sample is keyed by (votes for its
    answer, its mean log-prob, lower index); a sample without an answer has
    0 votes. The highest key wins, which is the best sample of the most
    common answer, ties between answers broken by their best samples."""
    if not answers:
        raise TripostError("no candidates to choose from")
    if len(answers) != len(mean_logprobs):
        raise TripostError(f"{len(answers)} answers but {len(mean_logprobs)} scores")
    counts: dict[str, int] = {}
    for a in answers:
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
    best, best_key = 0, None
    for i, (a, lp) in enumerate(zip(answers, mean_logprobs)):
        key = (counts[a] if a is not None else 0, lp)
        if best_key is None or key > best_key:
            best, best_key = i, key
    return best


def best_of_n(candidates: Sequence[Candidate], reward: str) -> int:
    """Index of the candidate that `reward` picks (ties: the lower index)."""
    if not candidates:
        raise TripostError("no candidates to choose from")
    if check_reward(reward) == "majority":
        return majority_choice([c.answer for c in candidates], [c.mean_logprob for c in candidates])
    return int(np.argmax(reward_values(candidates, reward)))  # argmax: first of equal maxima


def worst_of_n(candidates: Sequence[Candidate], reward: str, chosen: int) -> int | None:
    """Index of the candidate `reward` rates lowest, the rejected side of an
    RLHF-sharpening pair (tripost.train.objectives.dpo): among the non-empty candidates
    whose text differs from the chosen one's (ties: the higher index); None
    when there is none, so no pair. majority rates a sample by its answer's
    votes, then its mean log-probability."""
    if check_reward(reward) == "majority":
        votes = count_answers(c.answer for c in candidates)
        keys = [(0 if c.answer is None else votes[str(c.answer)], c.mean_logprob) for c in candidates]
    else:
        keys = [(float(v),) for v in reward_values(candidates, reward)]
    pool = [i for i, c in enumerate(candidates) if c.text and c.text != candidates[chosen].text]
    if not pool:
        return None
    return min(pool, key=lambda i: (keys[i], -i))


# ------------------------------------------------------------ expectations ---


def expected_best_of_n(scores: Sequence[float], correct: Sequence[bool], n: int) -> float:
    """Exact E[correct of the argmax-score sample] over uniformly random
    n-subsets of the samples (ties: lower index), by the rank formula in the
    module docstring: sum_k c_(k) C(M-1-k, n-1) / C(M, n)."""
    m = len(scores)
    _check_n(n, m)
    s = np.asarray(scores, dtype=float)
    order = np.lexsort((np.arange(m), -s))  # by score descending, then index ascending
    total = math.comb(m, n)
    c = np.asarray(correct, dtype=bool)[order]
    return float(sum(math.comb(m - 1 - k, n - 1) for k in range(m - n + 1) if c[k]) / total)


def oracle_at_n(correct: Sequence[bool], n: int) -> float:
    """pass@n: the chance that a random n-subset holds a correct sample,
    1 - C(M-c, n) / C(M, n) (Chen et al. 2021)."""
    m = len(correct)
    _check_n(n, m)
    c = int(np.sum(np.asarray(correct, dtype=bool)))
    return 1.0 - math.comb(m - c, n) / math.comb(m, n)


def subsets(m: int, n: int, max_subsets: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Index subsets of size n from range(m), each row sorted: all C(m, n) of
    them when there are at most `max_subsets` (exact=True), else
    `max_subsets` uniformly random ones."""
    _check_n(n, m)
    if max_subsets < 1:
        raise TripostError(f"max_subsets must be at least 1, got {max_subsets}")
    if math.comb(m, n) <= max_subsets:
        return np.array(list(itertools.combinations(range(m), n)), dtype=np.int64).reshape(-1, n), True
    picks = np.argsort(rng.random((max_subsets, m)), axis=1)[:, :n]
    return np.sort(picks, axis=1), False


def majority_over_subsets(answers: Sequence[str | None], mean_logprobs: Sequence[float], correct: Sequence[bool], idx: np.ndarray) -> float:
    """Mean correctness of `majority_choice` over the index subsets `idx`
    (rows, sorted ascending), vectorised."""
    ids: dict[str, int] = {}
    for a in answers:
        if a is not None:
            ids.setdefault(a, len(ids))
    none_col = len(ids)
    codes = np.array([ids[a] if a is not None else none_col for a in answers], dtype=np.int64)
    lp = np.asarray(mean_logprobs, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    sub = codes[idx]  # (S, n) answer codes
    counts = (sub[..., None] == np.arange(none_col + 1)).sum(axis=1)  # (S, A+1)
    votes = np.take_along_axis(counts, sub, axis=1)
    votes[sub == none_col] = 0
    top = votes == votes.max(axis=1, keepdims=True)
    key = np.where(top, lp[idx], -np.inf)
    # All -inf (every top sample empty): argmax of the raw mask gives the first top one.
    pick = np.where(np.isfinite(key).any(axis=1), key.argmax(axis=1), top.argmax(axis=1))
    return float(ok[np.take_along_axis(idx, pick[:, None], axis=1)[:, 0]].mean())


def _check_n(n: int, m: int) -> None:
    if not 1 <= n <= m:
        raise TripostError(f"best-of-{n} needs 1 <= N <= {m} (the samples drawn)")


# ---------------------------------------------------------- draw and score ---


@dataclass
class DrawStats:
    sequences: int = 0
    tokens: int = 0
    sample_seconds: float = 0.0
    score_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tokens_per_s"] = round(self.tokens / self.sample_seconds, 2) if self.sample_seconds > 0 else 0.0
        return d


def draw_candidates(
    student: StudentLike,
    problems: Sequence[Problem],
    n: int,
    config: SharpenConfig,
    seed: int,
    *,
    prompt_format: Any = None,
    progress: bool = False,
    stats: DrawStats | None = None,
) -> list[list[Candidate]]:
    """`n` attempts per problem, sampled in one batched, seeded call, then all
    scored in one batched `Student.logprobs` call, and checked against gold."""
    prompts = build_prompts(student.tokenizer, [p.question for p in problems], prompt_format)
    t0 = time.perf_counter()
    rows = student.sample(prompts, config.sampling_params(n, seed), batch_size=config.batch_size, progress=progress)
    t1 = time.perf_counter()
    texts = [[attempt_of(g.text) for g in row] for row in rows]
    flat_prompts = [prompts[i] for i, row in enumerate(texts) for _ in row]
    flat_texts = [t for row in texts for t in row]
    scores = student.logprobs(flat_prompts, flat_texts, batch_size=config.score_batch_size, append_eos=config.append_eos, progress=progress)
    t2 = time.perf_counter()
    if stats is not None:
        stats.sequences += len(flat_texts)
        stats.tokens += sum(g.n_tokens for row in rows for g in row)
        stats.sample_seconds += t1 - t0
        stats.score_seconds += t2 - t1
    out: list[list[Candidate]] = []
    k = 0
    for problem, row, gens in zip(problems, texts, rows):
        task = get_task(problem.family)
        cands = []
        for text, g in zip(row, gens):
            sc = scores[k]
            k += 1
            answer = task.parse_answer(text) if text else None
            empty = not text
            cands.append(Candidate(
                text=text,
                logprob=-math.inf if empty else sc.sum,
                mean_logprob=-math.inf if empty else sc.mean,
                n_tokens=sc.n_tokens,
                answer=answer,
                correct=bool(answer is not None and task.check_answer(problem, answer)),
                finish_reason=g.finish_reason,
            ))
        out.append(cands)
    return out


# -------------------------------------------------------- accuracy vs N ---


@dataclass
class SharpenEval:
    """Best-of-N accuracy per reward and N. `values[row][i]` holds the
    per-problem expected accuracies at `ns[i]` (rows: the rewards, `oracle`,
    and `single`, which is the same for every N)."""

    ns: list[int]
    rewards: list[str]
    problems: list[Problem]
    candidates: list[list[Candidate]]
    values: dict[str, list[np.ndarray]]
    exact: dict[str, list[bool]]
    config: SharpenConfig
    seed: int = 0
    n_boot: int = DEFAULT_BOOTSTRAP
    max_subsets: int = DEFAULT_MAX_SUBSETS
    student: dict[str, Any] = field(default_factory=dict)
    draw: DrawStats = field(default_factory=DrawStats)
    seconds: float = 0.0

    def table(self) -> dict[str, list[dict[str, Any]]]:
        """Row -> per N: accuracy, its 95% interval, and (for rewards) the gain
        over a single sample with its paired interval."""
        single = self.values["single"][0]
        out: dict[str, list[dict[str, Any]]] = {}
        for row, per_n in self.values.items():
            cells = []
            for i, (n, v) in enumerate(zip(self.ns, per_n)):
                ci = bootstrap_interval(v, n_boot=self.n_boot, seed=self.seed)
                cell: dict[str, Any] = {"n": n, "accuracy": float(v.mean()), "ci": list(ci) if ci else None, "exact": self.exact[row][i]}
                if row in REWARDS:
                    gci = bootstrap_interval(v - single, n_boot=self.n_boot, seed=self.seed)
                    cell["gain"] = float((v - single).mean())
                    cell["gain_ci"] = list(gci) if gci else None
                cells.append(cell)
            out[row] = cells
        return out

    def summary(self) -> dict[str, Any]:
        m = len(self.candidates[0]) if self.candidates else 0
        return {
            "schema": "tripost.sharpen-eval/1",
            "student": self.student,
            # The rewards evaluated are `rewards`; the config's own `reward` is the data path's.
            "config": {k: v for k, v in self.config.to_dict().items() if k != "reward"},
            "ns": self.ns,
            "rewards": self.rewards,
            "samples_per_problem": m,
            "seed": self.seed,
            "n_bootstrap": self.n_boot,
            "max_subsets": self.max_subsets,
            "problems": {
                "n": len(self.problems),
                "families": list(dict.fromkeys(p.family for p in self.problems)),
                "splits": sorted({p.split for p in self.problems}),
                "subsets": sorted({p.subset for p in self.problems}),
            },
            "table": self.table(),
            "per_problem": [
                {"id": p.id, "family": p.family, "subset": p.subset, "difficulty": p.difficulty, "gold": p.answer,
                 "correct_samples": sum(c.correct for c in cands), "samples": len(cands),
                 "answers": dict(sorted(count_answers(c.answer for c in cands).items(), key=lambda kv: -kv[1])[:5])}
                for p, cands in zip(self.problems, self.candidates)
            ],
            "generation": self.draw.to_dict(),
            "seconds": round(self.seconds, 3),
        }

    def samples_jsonl(self) -> str:
        lines = []
        for p, cands in zip(self.problems, self.candidates):
            for i, c in enumerate(cands):
                lines.append(json.dumps({"problem_id": p.id, "sample": i, **c.to_dict()}, ensure_ascii=False))
        return "".join(line + "\n" for line in lines)

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write the summary JSON to `path` and every sample, one JSON line
        each, beside it (`NAME.samples.jsonl`, named in the summary as
        `samples_file`); each to a temporary sibling first, then renamed, so
        a crash never leaves a half-written result that looks whole."""
        path = Path(path)
        samples = samples_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(samples, self.samples_jsonl())
        atomic_write_json(path, {**self.summary(), "samples_file": samples.name})
        return path, samples


def samples_path(path: str | Path) -> Path:
    """Where `SharpenEval.save(path)` writes the samples: NAME.samples.jsonl beside NAME.json."""
    return beside(path, ".samples.jsonl")


def count_answers(items: Any) -> dict[str, int]:
    """How often each parsed answer occurs ("<none>": no answer)."""
    out: dict[str, int] = {}
    for x in items:
        key = "<none>" if x is None else str(x)
        out[key] = out.get(key, 0) + 1
    return out


def accuracy_vs_n(
    student: StudentLike,
    problems: Sequence[Problem],
    ns: Sequence[int] = DEFAULT_NS,
    reward: str | Sequence[str] = "all",
    config: SharpenConfig | None = None,
    *,
    seed: int = 0,
    max_subsets: int = DEFAULT_MAX_SUBSETS,
    n_boot: int = DEFAULT_BOOTSTRAP,
    allow_train: bool = False,
    prompt_format: Any = None,
    progress: bool = False,
) -> SharpenEval:
    """Best-of-N accuracy against N for each reward (see the module docstring
    for the estimators). Samples max(ns) attempts per problem once (seed
    `seed`), scores them once, and evaluates every N and reward on them."""
    ns = parse_ns(ns)
    rewards = parse_rewards(reward)
    config = config or SharpenConfig(reward=rewards[0])
    if not problems:
        raise TripostError("sharpen: no problems")
    check_held_out(problems, allow_train)
    if n_boot < 1:
        raise TripostError(f"n_boot must be at least 1, got {n_boot}")
    m = max(ns)
    config.sampling_params(m, seed)  # greedy decoding with m > 1 is an error here, before any work
    t0 = time.perf_counter()
    stats = DrawStats()
    candidates = draw_candidates(student, problems, m, config, seed, prompt_format=prompt_format, progress=progress, stats=stats)
    result = evaluate_candidates(candidates, ns, rewards, seed=seed, max_subsets=max_subsets)
    return SharpenEval(
        ns=ns, rewards=rewards, problems=list(problems), candidates=candidates, values=result[0], exact=result[1],
        config=config, seed=seed, n_boot=n_boot, max_subsets=max_subsets,
        student=student.describe() if hasattr(student, "describe") else {}, draw=stats, seconds=time.perf_counter() - t0,
    )


def evaluate_candidates(
    candidates: Sequence[Sequence[Candidate]], ns: Sequence[int], rewards: Sequence[str], *, seed: int = 0, max_subsets: int = DEFAULT_MAX_SUBSETS
) -> tuple[dict[str, list[np.ndarray]], dict[str, list[bool]]]:
    """Per-problem expected best-of-N accuracies from already scored candidates:
    (row -> one array over problems per N, row -> whether each N was exact)."""
    ns = parse_ns(ns)
    rewards = parse_rewards(rewards)
    rows = [*rewards, "oracle", "single"]
    values: dict[str, list[list[float]]] = {r: [[] for _ in ns] for r in rows}
    exact: dict[str, list[bool]] = {r: [True] * len(ns) for r in rows}
    for p, cands in enumerate(candidates):
        correct = [c.correct for c in cands]
        for i, n in enumerate(ns):
            values["single"][i].append(float(np.mean(correct)) if cands else 0.0)
            values["oracle"][i].append(oracle_at_n(correct, n))
            for r in rewards:
                if r == "majority":
                    rng = np.random.default_rng([seed % 2**32, p, n])
                    idx, is_exact = subsets(len(cands), n, max_subsets, rng)
                    values[r][i].append(majority_over_subsets([c.answer for c in cands], [c.mean_logprob for c in cands], correct, idx))
                    exact[r][i] = exact[r][i] and is_exact
                else:
                    values[r][i].append(expected_best_of_n(reward_values(cands, r), correct, n))
    return {r: [np.array(v, dtype=float) for v in per_n] for r, per_n in values.items()}, exact


__all__ = [
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_MAX_SUBSETS",
    "DEFAULT_NS",
    "REWARDS",
    "Candidate",
    "DrawStats",
    "SharpenConfig",
    "SharpenEval",
    "accuracy_vs_n",
    "attempt_of",
    "best_of_n",
    "worst_of_n",
    "count_answers",
    "draw_candidates",
    "evaluate_candidates",
    "expected_best_of_n",
    "majority_choice",
    "majority_over_subsets",
    "oracle_at_n",
    "parse_ns",
    "parse_rewards",
    "reward_values",
    "samples_path",
    "subsets",
]
