"""Token ids in and logits out: one encoding for sampling, scoring and training.

A rendered prompt (prompt.py) becomes ids with `encode_prompt`, a continuation
with `encode_continuation`, and the two id lists are concatenated: the scored
or trained tokens are then the continuation's own tokenisation, whatever the
prompt ends with, exactly as the model produced them after the prompt.

Batches are padded on the left (`left_pad`) so that every row ends at the
last column, where generation continues and where the continuation's logits
are read; `position_ids` makes each row's positions count from its own first
real token, as they would unpadded. `forward_logits` runs the model keeping
only the last positions' logits: a 49k-word vocabulary times every prompt
position would dominate memory otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tripost.errors import TripostError


def adds_special_tokens(tok: Any, prompt: str) -> bool:
    """Whether encoding `prompt` adds the tokenizer's special tokens: not when
    the prompt already starts with BOS (a chat-templated prompt spells out its
    special tokens; a second BOS would shift the model's input distribution)."""
    return not (tok.bos_token and prompt.startswith(tok.bos_token))


def encode_prompt(tok: Any, prompt: str) -> list[int]:
    """A rendered prompt's ids, as the student samples, scores and trains on it."""
    ids = tok(prompt, add_special_tokens=adds_special_tokens(tok, prompt))["input_ids"]
    if not ids:
        # The first new token needs something to be predicted from.
        if tok.bos_token_id is None:
            raise TripostError("empty prompt, and the tokenizer has no BOS token to start from")
        ids = [tok.bos_token_id]
    return ids


def encode_continuation(tok: Any, text: str, *, append_eos: bool = False) -> list[int]:
    """A continuation's ids on its own (no special tokens; empty text: no ids),
    with the end-of-sequence token after it when `append_eos`."""
    ids = list(tok(text, add_special_tokens=False)["input_ids"]) if text else []
    if append_eos:
        ids.append(tok.eos_token_id)
    return ids


def pad_token_id(tok: Any) -> int:
    """The id that pads a batch: the tokenizer's pad token, else its EOS."""
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """(input_ids, attention_mask) of a batch padded on the left, so every
    row ends at the last column: where generation continues and where the
    scorers read the continuation's logits."""
    import torch

    width = max(len(x) for x in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, x in enumerate(seqs):
        input_ids[r, width - len(x) :] = torch.tensor(x, dtype=torch.long)
        attention[r, width - len(x) :] = 1
    return input_ids, attention


def position_ids(attention: Any) -> Any:
    """Position ids of a left-padded batch: each row counts from its first
    real token (padding gets 0), as the row would unpadded."""
    return (attention.cumsum(-1) - 1).clamp(min=0)


def forward_logits(model: Any, input_ids: Any, attention: Any, positions: Any, keep: int) -> Any:
    """The logits of the last `keep` positions of one forward pass (no KV cache)."""
    return model(input_ids=input_ids, attention_mask=attention, position_ids=positions, logits_to_keep=keep, use_cache=False).logits
