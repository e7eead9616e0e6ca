"""Sequence log-probabilities of given continuations under the student.

log p(continuation | prompt) = sum over the continuation's tokens of
log p(token | everything before it). The sum is the model's likelihood of a
whole answer; the per-token mean is its length-normalised form. Sharpening
(Huang et al. 2024) uses both as a self-reward for best-of-N, and the
generation-verification gap (Song et al. 2024) scores samples the same way.

The prompt is tokenised exactly as for generation and the continuation on its
own (no special tokens), and the two id lists are concatenated, so the scored
tokens are the continuation's own tokenisation whatever the prompt ends with.
Batches are left-padded with explicit position ids, and only the logits that
predict continuation tokens are materialised (`logits_to_keep`): a 49k-word
vocabulary times every prompt position would dominate memory otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tripost.errors import TripostError

if TYPE_CHECKING:
    from tripost.student.load import Student


@dataclass(frozen=True)
class SequenceScore:
    """`sum` and `mean` of the continuation's token log-probabilities (natural
    log). An empty continuation has n_tokens 0, sum 0.0 (log 1) and mean 0.0;
    callers ranking by mean should look at n_tokens."""

    sum: float
    mean: float
    n_tokens: int
    token_logprobs: tuple[float, ...] = ()


def sequence_logprobs(
    student: "Student",
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int = 8,
    append_eos: bool = False,
    progress: bool = False,
) -> list[SequenceScore]:
    """Score `continuations[i]` after `prompts[i]`. With `append_eos` the
    end-of-sequence token is scored too: the likelihood that the answer is
    complete, not just a prefix."""
    import torch
    from tqdm.auto import tqdm

    from tripost.student.generate import encode_prompt, left_pad

    if len(prompts) != len(continuations):
        raise TripostError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    if batch_size < 1:
        raise TripostError(f"batch size must be at least 1, got {batch_size}")
    model, tok = student.model, student.tokenizer
    items: list[tuple[list[int], list[int]]] = []
    for p, c in zip(prompts, continuations):
        pid = encode_prompt(tok, p)  # an empty prompt becomes [BOS]: the first token needs a context
        cid = tok(c, add_special_tokens=False)["input_ids"] if c else []
        if append_eos:
            cid = cid + [tok.eos_token_id]
        items.append((pid, cid))
    order = sorted(range(len(items)), key=lambda k: len(items[k][0]) + len(items[k][1]))
    scores: list[SequenceScore | None] = [None] * len(items)
    device = student.device
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    batches = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(batches, desc="scoring", unit="batch", disable=not progress or len(batches) < 2):
            max_c = max(len(items[k][1]) for k in batch)
            input_ids, attention = left_pad([items[k][0] + items[k][1] for k in batch], pad_id)
            # Left padding shifts where each row starts; positions count from
            # each row's first real token, as they would unpadded.
            positions = (attention.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = _forward(model, input_ids.to(device), attention.to(device), positions.to(device), max_c + 1)
                logp = logits.float().log_softmax(-1).cpu()
            for r, k in enumerate(batch):
                cid = items[k][1]
                c = len(cid)
                if c == 0:
                    scores[k] = SequenceScore(0.0, 0.0, 0)
                    continue
                # Kept logits cover the last max_c+1 positions; the ones that
                # predict this row's c continuation tokens are the c before the last.
                rows = logp[r, max_c - c : max_c]
                tok_lp = rows.gather(-1, torch.tensor(cid, dtype=torch.long).unsqueeze(-1)).squeeze(-1)
                values = tuple(float(v) for v in tok_lp)
                total = float(tok_lp.double().sum())
                scores[k] = SequenceScore(total, total / c, c, values)
    finally:
        if was_training:
            model.train()
    return [s for s in scores if s is not None]


def _forward(model: Any, input_ids: Any, attention: Any, positions: Any, keep: int) -> Any:
    return model(input_ids=input_ids, attention_mask=attention, position_ids=positions, logits_to_keep=keep, use_cache=False).logits
