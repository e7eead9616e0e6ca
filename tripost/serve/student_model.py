"""What serve-student asks of the model itself: sampling from token ids
made already (`GivenIds`), scoring prompts in batched forward passes
(`score`, `Scored`), and vLLM's formats of the log-probabilities found."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from tripost.student.base import Generation, SamplingParams
from tripost.student.tokens import forward_logits, left_pad, pad_token_id, position_ids

SCORE_BATCH_TOKENS = 2048  # positions (padded) in one scoring forward pass: as many rows of vocabulary-wide logits


class GivenIds:
    """The student's tokenizer, except that the placeholder texts serve-student
    hands the sampler (`placeholder`) stand for token ids made already, by
    vLLM's rules (`StudentService._encode`): the sampler encodes its prompts
    through the tokenizer, and this way it starts from exactly those ids.
    Everything else is the tokenizer's own."""

    def __init__(self, tokenizer: Any, ids: list[list[int]]):
        self._tokenizer = tokenizer
        self._ids = {self.placeholder(k): x for k, x in enumerate(ids)}

    @staticmethod
    def placeholder(k: int) -> str:
        return f"\x00serve-student prompt {k}\x00"

    def __call__(self, text: Any, *args: Any, **kw: Any) -> Any:
        if isinstance(text, str) and text in self._ids:
            return {"input_ids": list(self._ids[text])}
        return self._tokenizer(text, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


@dataclass(frozen=True)
class Scored:
    """What one scoring pass over a prompt found (`score`):
    per position after the first, the prompt token's log-probability and
    rank and the likeliest (id, log-probability) pairs; the likeliest next token."""

    logprobs: list[float]
    ranks: list[int]
    top: list[list[tuple[int, float]]]
    next_id: int


def end_ids(student: Any) -> set[int]:
    """The token ids that end a generation: the tokenizer's EOS and the model's generation config's."""
    ends = {student.tokenizer.eos_token_id}
    raw = getattr(getattr(student.model, "generation_config", None), "eos_token_id", None)
    ends.update(raw if isinstance(raw, (list, tuple)) else [raw])
    return {int(x) for x in ends if x is not None}


def sample(student: Any, ids: list[list[int]], params: SamplingParams, scores: list["Scored"]) -> list[list[Generation]]:
    """`params.n` generations from each prompt's ids, by the in-process
    engine. A scoring request (one greedy token, no stop strings) takes
    its token from the scoring pass: the same argmax, one forward pass
    instead of two."""
    if scores and params.n == 1 and params.greedy and params.max_new_tokens == 1 and not params.stop:
        tok = student.tokenizer
        ends = end_ids(student)
        return [[Generation(prompt_index=i, sample_index=0, text=tok.decode([s.next_id], skip_special_tokens=True),
                            n_tokens=1, finish_reason="eos" if s.next_id in ends else "length")]
                for i, s in enumerate(scores)]
    view = copy.copy(student)  # the same model, a tokenizer that hands the sampler these ids
    view.tokenizer = GivenIds(student.tokenizer, ids)
    return view.sample([GivenIds.placeholder(k) for k in range(len(ids))], params)


def score(student: Any, prompts: list[list[int]], top: int) -> list["Scored"]:
    """Each prompt token's log-probability given the ones before it, its
    rank, the `top` likeliest tokens at each position and the likeliest
    next token, for every prompt: left-padded forward passes over
    prompts of similar length, at most SCORE_BATCH_TOKENS positions each
    (as many logits rows, each a vocabulary wide)."""
    import torch

    order = sorted(range(len(prompts)), key=lambda k: len(prompts[k]))
    batches: list[list[int]] = []
    for k in order:  # ascending lengths: a batch's width is its last prompt's length
        if batches and (len(batches[-1]) + 1) * len(prompts[k]) <= SCORE_BATCH_TOKENS:
            batches[-1].append(k)
        else:
            batches.append([k])
    out: list[Scored | None] = [None] * len(prompts)
    pad = pad_token_id(student.tokenizer)
    device = student.device
    for batch in batches:
        x, attention = left_pad([prompts[k] for k in batch], pad)
        width = x.shape[1]
        with torch.no_grad():
            logits = forward_logits(student.model, x.to(device), attention.to(device),
                                    position_ids(attention).to(device), width).float()
            norm = logits.logsumexp(-1)  # log-probability = logit - this; no second vocabulary-wide tensor
            for r, k in enumerate(batch):
                ids = prompts[k]
                row, row_norm = logits[r, width - len(ids) :], norm[r, width - len(ids) : width - 1]
                target = torch.tensor(ids[1:], dtype=torch.long, device=row.device)
                at = row[:-1].gather(-1, target[:, None]).squeeze(-1)
                ranks = (row[:-1] > at[:, None]).sum(-1) + 1
                best = row[:-1].topk(top, dim=-1) if top and len(ids) > 1 else None
                out[k] = Scored(logprobs=(at - row_norm).tolist(), ranks=ranks.tolist(),
                                top=[list(zip(t, v)) for t, v in zip(best.indices.tolist(), (best.values - row_norm[:, None]).tolist())]
                                if best else [],
                                next_id=int(row[-1].argmax()))
    return [s for s in out if s is not None]


def prompt_logprobs(student: Any, ids: list[int], s: "Scored", k: int) -> list[dict[str, dict[str, Any]] | None]:
    """vLLM's `prompt_logprobs` of a choice: None for the first token,
    then {token id: {logprob, rank, decoded_token}} for the prompt's token
    and the `k` likeliest (vllm.logprobs.Logprob; -inf clamped to -9999 as
    vLLM's clamp_prompt_logprobs does). Each token is decoded alone."""
    tok = student.tokenizer
    out: list[dict[str, dict[str, Any]] | None] = [None]
    for pos in range(1, len(ids)):
        entry = {str(ids[pos]): {"logprob": max(s.logprobs[pos - 1], -9999.0), "rank": s.ranks[pos - 1],
                                 "decoded_token": tok.decode([ids[pos]])}}
        for rank, (t, v) in enumerate(s.top[pos - 1][:k] if k else [], start=1):
            entry.setdefault(str(t), {"logprob": max(v, -9999.0), "rank": rank, "decoded_token": tok.decode([t])})
        out.append(entry)
    return out


def echo_logprobs(student: Any, ids: list[int], s: "Scored", k: int, as_ids: bool) -> dict[str, Any]:
    """The OpenAI `logprobs` of an echoed prompt, built as vLLM's
    _create_completion_logprobs builds them (serving_completion): each
    token decoded alone, or "token_id:N" with return_tokens_as_token_ids;
    text_offset the running sum of those strings' lengths from 0, so a
    character split across tokens (each part decodes to U+FFFD) shifts the
    offsets after it; the first token has no log-probability."""
    tok = student.tokenizer

    def name(t: int) -> str:
        return f"token_id:{t}" if as_ids else tok.decode([t])

    tokens = [name(t) for t in ids]
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t)
    top_logprobs: list[dict[str, float] | None] = [None]
    for pos in range(1, len(ids)):
        entry = {tokens[pos]: max(s.logprobs[pos - 1], -9999.0)}
        for t, v in s.top[pos - 1][:k] if k else []:
            entry.setdefault(name(t), max(v, -9999.0))
        top_logprobs.append(entry)
    return {"tokens": tokens, "token_logprobs": [None, *(max(v, -9999.0) for v in s.logprobs)],
            "top_logprobs": top_logprobs, "text_offset": offsets}
