"""Sequence log-probabilities of given continuations under the student.

log p(continuation | prompt) = sum over the continuation's tokens of
log p(token | everything before it). The sum is the model's likelihood of a
whole answer; the per-token mean is its length-normalised form. Sharpening
(Huang et al. 2024) uses both as a self-reward for best-of-N, and the
generation-verification gap (Song et al. 2024) scores samples the same way.

The prompt is tokenised exactly as for generation and the continuation on its
own (tripost.student.tokens), and the two id lists are concatenated, so the
scored tokens are the continuation's own tokenisation whatever the prompt ends
with. `logprob_batches` is the one left-padded scoring loop: batches in
length order, explicit position ids, and only the logits that predict
continuation tokens materialised. `sequence_logprobs` and the verifier's
shared pass (tripost.gap) both read their numbers from it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from tripost.errors import TripostError
from tripost.student.base import LoadedModel, SequenceScore
from tripost.student.tokens import encode_continuation, encode_prompt, forward_logits, left_pad, pad_token_id, position_ids


def logprob_batches(
    student: LoadedModel,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "scoring",
) -> Iterator[tuple[list[int], Any]]:
    """Log-probabilities of (prompt ids, continuation ids) pairs, one
    left-padded forward pass per batch.

    Pairs are batched shortest first (similar lengths share a batch, so little
    goes to padding). Yields (the batch's indices into `pairs`, log-probs):
    a float32 CPU tensor [rows, max_c, vocab] where max_c is the batch's
    longest continuation; row r's c continuation tokens are predicted by
    `logp[r, max_c - c:]`. The model is in eval mode while this runs."""
    import torch
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise TripostError(f"batch size must be at least 1, got {batch_size}")
    model = student.model
    order = sorted(range(len(pairs)), key=lambda k: len(pairs[k][0]) + len(pairs[k][1]))
    pad_id = pad_token_id(student.tokenizer)
    device = student.device
    batches = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(batches, desc=desc, unit="batch", disable=not progress or len(batches) < 2):
            max_c = max(len(pairs[k][1]) for k in batch)
            input_ids, attention = left_pad([list(pairs[k][0]) + list(pairs[k][1]) for k in batch], pad_id)
            with torch.inference_mode():
                # Kept: the last max_c+1 positions; the first max_c of them
                # predict continuation tokens (the last predicts what follows).
                logits = forward_logits(model, input_ids.to(device), attention.to(device), position_ids(attention).to(device), max_c + 1)
                logp = logits[:, :max_c].float().log_softmax(-1).cpu()
            yield batch, logp
    finally:
        if was_training:
            model.train()


def sequence_logprobs(
    student: LoadedModel,
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

    if len(prompts) != len(continuations):
        raise TripostError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    if batch_size < 1:
        raise TripostError(f"batch size must be at least 1, got {batch_size}")
    tok = student.tokenizer
    # An empty prompt becomes [BOS]: the first token needs a context.
    pairs = [(encode_prompt(tok, p), encode_continuation(tok, c, append_eos=append_eos)) for p, c in zip(prompts, continuations)]
    scores: list[SequenceScore | None] = [None] * len(pairs)
    for batch, logp in logprob_batches(student, pairs, batch_size=batch_size, progress=progress):
        max_c = logp.shape[1]
        for r, k in enumerate(batch):
            cid = pairs[k][1]
            c = len(cid)
            if c == 0:
                scores[k] = SequenceScore(0.0, 0.0, 0)
                continue
            tok_lp = logp[r, max_c - c :].gather(-1, torch.tensor(cid, dtype=torch.long).unsqueeze(-1)).squeeze(-1)
            values = tuple(float(v) for v in tok_lp)
            total = float(tok_lp.double().sum())
            scores[k] = SequenceScore(total, total / c, c, values)
    return [s for s in scores if s is not None]
