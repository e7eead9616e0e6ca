"""The student's own verifiers and the filters over their scores.

Song et al. 2024, "Mind the Gap: Examining the Self-Improvement Capabilities
of Large Language Models" (arXiv:2412.02674), describe self-improvement as
generate -> verify -> filter (-> distil): the model scores its own samples
and keeps the ones it believes. This module is the verify and filter steps,
with no gold answer anywhere: `tripost.gap` measures how much they gain
(layer 7), and `tripost.sources.selfverify` trains on what they keep
(layer 4, which may not import the gap).

Verifiers, each a score in [0, 1] per sample:

- ``mc`` (the paper's multiple-choice verification): after its own answer
  the student is asked whether it is correct (prompts/verify_mc.txt), its
  reply starts with "Verdict:", and the score is
  p(Correct) / (p(Correct) + p(Incorrect)) from its own probabilities; see
  `verify_prompt` and `mc_logprobs` (one batched forward pass; each word's
  full-sequence log-probability, as " Incorrect" is two tokens).
- ``self``: the student's own closing feedback in the sample: 1.0 when its
  last feedback says "The final response is also correct.", else 0.0 (also
  when it wrote no feedback at all, as an untrained student does).
- ``cot`` (the paper's chain-of-thought verification): the student first
  writes a short verification of its answer (prompts/verify_cot.txt; greedy,
  at most `cot_max_new_tokens` tokens, cut where it starts a verdict of its
  own), and the score is the ``mc`` score of the verdict word read after its
  own verification and "Verdict:" (`cot_verify`). Reading the verdict's
  probabilities, rather than parsing the word it wrote, gives a graded score
  that the quantile filter can rank, and never depends on its spelling.

Filters (`keep_mask`):

- ``quantile``: per problem, keep the samples whose score is >= the
  ceil(q*N)-th largest score of that problem (q: the share kept). Ties at the
  cut are all kept, so a verifier that scores every sample alike keeps
  everything.
- ``threshold``: keep the samples with score >= t; a problem can then keep
  nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from tripost.errors import TripostError
from tripost.format import parse_feedback, parse_rationale, parse_trajectory
from tripost.paths import read_prompt
from tripost.student.base import LoadedModel, SamplingParams, StudentLike
from tripost.student.generate import DEFAULT_BATCH
from tripost.student.logprob import logprob_batches, sequence_logprobs
from tripost.student.prompt import PromptFormat, render_chat, render_instruction
from tripost.student.tokens import encode_prompt

VERIFIERS = ("mc", "self", "cot")  # the student's own; tripost.gap adds "teacher"
FILTERS = ("quantile", "threshold")


class VerifierSettings(Protocol):
    """What the verifiers read of a config (`VerifyConfig` and
    `tripost.gap.GapConfig` are both one)."""

    verifier: str
    mc_template: str
    mc_prefix: str
    mc_words: tuple[str, str]
    cot_template: str
    cot_max_new_tokens: int
    batch_size: int
    score_batch_size: int
    progress: bool


@dataclass(frozen=True)
class VerifyConfig:
    """How the student verifies its own samples.

    mc_template / mc_prefix / mc_words: the ``mc`` verification prompt (a file
    under prompts/), the text the student's verdict turn starts with, and the
    two verdict continuations (correct first). cot_template /
    cot_max_new_tokens: the ``cot`` prompt and the length bound of the
    verification the student writes before its verdict."""

    verifier: str = "mc"
    mc_template: str = "verify_mc.txt"
    mc_prefix: str = "Verdict:"
    mc_words: tuple[str, str] = (" Correct", " Incorrect")
    cot_template: str = "verify_cot.txt"
    cot_max_new_tokens: int = 96
    batch_size: int = DEFAULT_BATCH  # verifications decoded together (cot)
    score_batch_size: int = 16  # verification prompts per forward pass
    progress: bool = False

    def __post_init__(self) -> None:
        if self.verifier not in VERIFIERS:
            raise TripostError(f"unknown verifier {self.verifier!r}; choose from {', '.join(VERIFIERS)}")
        for name in ("cot_max_new_tokens", "batch_size", "score_batch_size"):
            if getattr(self, name) < 1:
                raise TripostError(f"{name} must be at least 1, got {getattr(self, name)}")
        words = tuple(self.mc_words)
        if len(words) != 2 or not all(isinstance(w, str) and w for w in words) or words[0] == words[1]:
            raise TripostError(f"mc_words must be two different non-empty strings (correct, incorrect), got {self.mc_words!r}")
        object.__setattr__(self, "mc_words", words)


# ------------------------------------------------------------------ filters ---


def keep_quantile(scores: Sequence[float], q: float) -> list[bool]:
    """Keep the samples scoring >= the ceil(q*N)-th largest score (ties kept)."""
    if not 0 < q <= 1:
        raise TripostError(f"quantile must be in (0, 1], got {q}")
    if not scores:
        return []
    # 1e-9: in floats 0.3 * 10 is 3.0000000000000004, and ceil must still give 3.
    k = max(1, math.ceil(q * len(scores) - 1e-9))
    cut = sorted(scores, reverse=True)[k - 1]
    return [s >= cut for s in scores]


def keep_threshold(scores: Sequence[float], t: float) -> list[bool]:
    """Keep the samples scoring >= t."""
    return [s >= t for s in scores]


def keep_mask(scores: Sequence[float], filter: str, quantile: float = 0.5, threshold: float = 0.5) -> list[bool]:
    if filter == "quantile":
        return keep_quantile(scores, quantile)
    if filter == "threshold":
        return keep_threshold(scores, threshold)
    raise TripostError(f"unknown filter {filter!r}; choose from {', '.join(FILTERS)}")


# --------------------------------------------------------------------- mc ---


def _render(tokenizer: Any, question: str, attempt: str, template: str, fmt: Any) -> str:
    """The student's own problem prompt, its answer as its own turn, then the
    question of `template` as the next user turn, ending where its reply
    begins. Without a chat template the parts follow each other as plain text."""
    fmt = fmt or PromptFormat()
    ask = read_prompt(template).strip()
    turns = [render_instruction(question, fmt.template).rstrip("\n"), attempt.strip(), ask]
    return render_chat(tokenizer, turns, fmt)


def verify_prompt(tokenizer: Any, question: str, attempt: str, config: VerifierSettings | None = None, fmt: Any = None) -> str:
    """The ``mc`` verification prompt: the student's own problem prompt, its
    answer as its own turn, then the question of prompts/verify_mc.txt as the
    next user turn, and the start of its reply (`mc_prefix`, "Verdict:"), so
    the next words are the verdict. Without a chat template the same parts
    follow each other as plain text."""
    cfg = config or VerifyConfig()
    return _render(tokenizer, question, attempt, cfg.mc_template, fmt) + cfg.mc_prefix


def mc_logprobs(
    student: StudentLike, prompts: Sequence[str], words: tuple[str, str] = (" Correct", " Incorrect"), *, batch_size: int = 16, progress: bool = False
) -> list[tuple[float, float]]:
    """(log p(words[0] | prompt), log p(words[1] | prompt)) for every prompt:
    the full-sequence log-probability of each word's tokens (a word can be
    several tokens: SmolLM2 spells " Incorrect" as " Inc" + "orrect").

    One batched forward pass over the prompts. When the shorter word's tokens
    but its last one are a prefix of the longer word's tokens (always so when
    the shorter word is one token, as " Correct" is), a single sequence
    prompt + longer word holds both: the longer word's log-probability is the
    sum over its tokens, and the shorter one's is the same sum over its first
    tokens plus the log-probability of its own last token at the position
    where it would come. Otherwise both continuations are scored with
    `tripost.student.logprob.sequence_logprobs` in one call (two sequences a
    prompt). Tokenisation matches sequence_logprobs: the prompt as for
    generation, each word on its own without special tokens.

    A student without the model in this process (a remote engine,
    tripost.student.remote) scores each word with its `logprobs`: two
    sequences a prompt, the same quantities."""
    if not student.in_process:
        n = len(prompts)
        scores = student.logprobs([*prompts, *prompts], [words[0]] * n + [words[1]] * n)
        return [(scores[i].sum, scores[n + i].sum) for i in range(n)]
    local = cast(LoadedModel, student)  # in_process: the model's weights are here (StudentLike.in_process)
    tok = local.tokenizer
    ids = [tok(w, add_special_tokens=False)["input_ids"] for w in words]
    if not ids[0] or not ids[1]:
        raise TripostError(f"verdict words {words!r} must each tokenize to at least one token")
    long_i = 0 if len(ids[0]) >= len(ids[1]) else 1
    longer, shorter = ids[long_i], ids[1 - long_i]
    if shorter[:-1] != longer[: len(shorter) - 1] or ids[0] == ids[1]:
        m = len(prompts)
        scores = sequence_logprobs(local, list(prompts) * 2, [words[0]] * m + [words[1]] * m, batch_size=batch_size, progress=progress)
        return [(scores[i].sum, scores[m + i].sum) for i in range(m)]
    pairs = _shared_pass(local, prompts, longer, shorter, batch_size, progress)
    return [(lp_long, lp_short) if long_i == 0 else (lp_short, lp_long) for lp_long, lp_short in pairs]


def _shared_pass(student: LoadedModel, prompts: Sequence[str], longer: list[int], shorter: list[int], batch_size: int, progress: bool) -> list[tuple[float, float]]:
    import torch

    pairs = [(encode_prompt(student.tokenizer, p), longer) for p in prompts]
    out: list[tuple[float, float] | None] = [None] * len(pairs)
    c, s = len(longer), len(shorter)
    long_t = torch.tensor(longer, dtype=torch.long)
    for batch, logp in logprob_batches(student, pairs, batch_size=batch_size, progress=progress, desc="verifying"):
        # Every row continues with the longer word: all c positions predict its tokens.
        tok_lp = logp.gather(-1, long_t.expand(len(batch), c).unsqueeze(-1)).squeeze(-1).double()
        lp_long = tok_lp.sum(-1)
        lp_short = tok_lp[:, : s - 1].sum(-1) + logp[:, s - 1, shorter[-1]].double()
        for r, k in enumerate(batch):
            out[k] = (float(lp_long[r]), float(lp_short[r]))
    return [x for x in out if x is not None]


def verdict_score(logp_correct: float, logp_incorrect: float) -> float:
    """p(correct) / (p(correct) + p(incorrect)) from the two log-probabilities,
    computed as sigmoid(lp0 - lp1), which cannot overflow."""
    x = logp_correct - logp_incorrect
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def mc_scores(student: StudentLike, prompts: Sequence[str], words: tuple[str, str] = (" Correct", " Incorrect"), *, batch_size: int = 16) -> list[float]:
    """p(words[0]) / (p(words[0]) + p(words[1])) per verification prompt, from
    `mc_logprobs`."""
    return [verdict_score(a, b) for a, b in mc_logprobs(student, prompts, words, batch_size=batch_size)]


# -------------------------------------------------------------------- cot ---

# Where the student starts a verdict of its own: its verification is cut there,
# and the verdict is read from its probabilities after "Verdict:" instead.
_OWN_VERDICT = re.compile(r"verdict", re.IGNORECASE)


@dataclass(frozen=True)
class CotVerdict:
    """One ``cot`` verification: what the student wrote, the prompt its
    verdict is read after (the cot prompt, the verification, "Verdict:"), and
    the two verdict words' log-probabilities there."""

    verification: str
    prompt: str
    logp_correct: float
    logp_incorrect: float

    @property
    def score(self) -> float:
        return verdict_score(self.logp_correct, self.logp_incorrect)


def cot_prompt(tokenizer: Any, question: str, attempt: str, config: VerifierSettings | None = None, fmt: Any = None) -> str:
    """The prompt the student writes its verification after: its problem
    prompt, its answer as its own turn, prompts/verify_cot.txt as the next user
    turn, and the start of its reply."""
    cfg = config or VerifyConfig()
    return _render(tokenizer, question, attempt, cfg.cot_template, fmt)


def verification_text(generated: str) -> str:
    """The student's verification: its text up to where it starts a verdict of its own."""
    m = _OWN_VERDICT.search(generated)
    return (generated[: m.start()] if m else generated).strip()


def verdict_prompt(prompt: str, verification: str, prefix: str = "Verdict:") -> str:
    """The cot prompt, the student's own verification, then the verdict prefix."""
    return f"{prompt}{verification}\n{prefix}" if verification else prompt + prefix


def cot_verify(student: StudentLike, questions: Sequence[str], attempts: Sequence[str], config: VerifierSettings | None = None, fmt: Any = None) -> list[CotVerdict]:
    """The ``cot`` verifier: the student writes a verification of each
    attempt (greedy, so the score is a function of the attempt; at most
    `cot_max_new_tokens` tokens), then the verdict words are scored after it
    with `mc_logprobs`, in one batched pass."""
    cfg = config or VerifyConfig()
    if len(questions) != len(attempts):
        raise TripostError(f"cot verifier: {len(questions)} questions but {len(attempts)} attempts")
    if not attempts:
        return []
    prompts = [cot_prompt(student.tokenizer, q, a, cfg, fmt) for q, a in zip(questions, attempts)]
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=cfg.cot_max_new_tokens, stop=("Verdict",))
    rows = student.sample(prompts, params, batch_size=cfg.batch_size, progress=cfg.progress)
    verifications = [verification_text(row[0].text) for row in rows]
    scored = [verdict_prompt(p, v, cfg.mc_prefix) for p, v in zip(prompts, verifications)]
    lps = mc_logprobs(student, scored, cfg.mc_words, batch_size=cfg.score_batch_size, progress=cfg.progress)
    return [CotVerdict(v, p, a, b) for v, p, (a, b) in zip(verifications, scored, lps)]


# ------------------------------------------------------------------- self ---


def self_score(sample_text: str) -> float:
    """1.0 when the sample's last turn carries feedback that says its final
    response is correct (tripost.format.parse_feedback), else 0.0."""
    turns = parse_trajectory(sample_text).turns
    if not turns or turns[-1].feedback is None:
        return 0.0
    fb = parse_feedback(turns[-1].feedback, parse_rationale(turns[-1].rationale).n_steps)
    return 1.0 if fb is not None and fb.is_correct else 0.0


def final_rationale(sample_text: str) -> str:
    """The last rationale the student wrote in a sample (its final answer)."""
    turns = parse_trajectory(sample_text).turns
    return turns[-1].rationale if turns else ""


# ------------------------------------------------------------- one call ---


def score_samples(
    student: StudentLike, questions: Sequence[str], attempts: Sequence[str], texts: Sequence[str], config: VerifierSettings
) -> tuple[list[float], list[dict[str, Any]]]:
    """(score, detail) of each sample by `config.verifier`: ``mc`` and ``cot``
    judge `attempts` (the answer under verification) after `questions`;
    ``self`` reads the student's own feedback in `texts` (the sample as
    written). `detail` holds what the score came from (log-probabilities, the
    cot verification)."""
    if not (len(questions) == len(attempts) == len(texts)):
        raise TripostError(f"{len(questions)} questions, {len(attempts)} attempts and {len(texts)} texts to verify")
    if config.verifier == "self":
        return [self_score(t) for t in texts], [{} for _ in texts]
    if config.verifier == "mc":
        prompts = [verify_prompt(student.tokenizer, q, a, config) for q, a in zip(questions, attempts)]
        lps = mc_logprobs(student, prompts, config.mc_words, batch_size=config.score_batch_size, progress=config.progress)
        return [verdict_score(a, b) for a, b in lps], [{"logp_correct": a, "logp_incorrect": b} for a, b in lps]
    if config.verifier == "cot":
        out = cot_verify(student, questions, attempts, config)
        return [v.score for v in out], [{"verification": v.verification, "logp_correct": v.logp_correct, "logp_incorrect": v.logp_incorrect}
                                        for v in out]
    raise TripostError(f"unknown verifier {config.verifier!r}; choose from {', '.join(VERIFIERS)}")


__all__ = [
    "FILTERS",
    "VERIFIERS",
    "CotVerdict",
    "VerifierSettings",
    "VerifyConfig",
    "cot_prompt",
    "cot_verify",
    "final_rationale",
    "keep_mask",
    "keep_quantile",
    "keep_threshold",
    "mc_logprobs",
    "mc_scores",
    "score_samples",
    "self_score",
    "verdict_prompt",
    "verdict_score",
    "verification_text",
    "verify_prompt",
]
