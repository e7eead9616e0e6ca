"""Examples as the trainer sees them: tokenisation with per-token loss weights, padded and packed
collators, the length-bucketed sampler, and reading a saved buffer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tripost.errors import TripostError
from tripost.format import FEEDBACK_PREFIX, UPDATED_PREFIX
from tripost.student.prompt import PromptFormat, build_prompt
from tripost.student.tokens import encode_prompt
from tripost.train.config import TrainConfig

if TYPE_CHECKING:
    import datasets
    import torch


# The first feedback starts a line (tripost.format renders it so; parse_trajectory
# splits on the same pattern).
_FEEDBACK_RE = re.compile(rf"^[ \t]*({re.escape(FEEDBACK_PREFIX)})", re.MULTILINE)
_UPDATED_RE = re.compile(rf"^[ \t]*{re.escape(UPDATED_PREFIX)}", re.MULTILINE)


# ------------------------------------------------------------ tokenisation ---


@dataclass(frozen=True)
class TokenizedExample:
    """Token ids and, per token, the weight of predicting that token (the first
    token is never predicted, so its weight is unused)."""

    input_ids: list[int]
    weights: list[float]
    prompt_len: int
    feedback_start: int | None  # index of the first feedback token; None without feedback

    def __len__(self) -> int:
        return len(self.input_ids)


def feedback_offset(completion: str) -> int | None:
    """Character offset of the first `Feedback:` that starts a line, or None."""
    m = _FEEDBACK_RE.search(completion)
    return m.start(1) if m else None


def tokenize_example(
    tokenizer: Any,
    prompt_text: str,
    completion: str,
    *,
    prompt_weight: float = 0.0,
    attempt_weight: float = 1.0,
    feedback_weight: float = 1.5,
    example_weight: float = 1.0,
    revised_attempt_weight: float | None = None,
) -> TokenizedExample:
    """Prompt ids + completion ids + EOS with per-token weights.

    The prompt is tokenised as at sampling time and the completion on its own
    (as the model generates it after the prompt, and as logprob.py scores it),
    then EOS closes it so the student learns to stop. A completion token
    counts as feedback when any of its characters lies at or after the first
    `Feedback:`; the closing EOS takes the weight of the part it ends. Tokens
    after an EOS inside the completion get weight 0 (nothing after the end of
    a sequence is a target). When the completion revises its first attempt
    (an `Updated Answer:` after the first feedback), that attempt weighs
    `revised_attempt_weight` instead (None: `attempt_weight`)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise TripostError("the student's tokenizer has no EOS token; cannot teach it to stop")

    prompt_ids = encode_prompt(tokenizer, prompt_text)
    if not prompt_ids:
        bos = tokenizer.bos_token_id
        if bos is None:
            raise TripostError("empty prompt and no BOS token: the first completion token has nothing to follow")
        prompt_ids = [bos]
    cut = feedback_offset(completion)
    if revised_attempt_weight is not None and cut is not None and _UPDATED_RE.search(completion, cut):
        attempt_weight = revised_attempt_weight
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)
        comp_ids = list(enc["input_ids"])
        is_fb = [cut is not None and end > cut for _, end in enc["offset_mapping"]]
    else:  # no offsets: tokenise the two parts apart (boundary tokens may differ slightly)
        head = completion if cut is None else completion[:cut]
        tail = "" if cut is None else completion[cut:]
        a = tokenizer(head, add_special_tokens=False)["input_ids"] if head else []
        b = tokenizer(tail, add_special_tokens=False)["input_ids"] if tail else []
        comp_ids, is_fb = list(a) + list(b), [False] * len(a) + [True] * len(b)
    comp_w = [(feedback_weight if f else attempt_weight) * example_weight for f in is_fb]
    comp_ids.append(eos)
    comp_w.append((feedback_weight if cut is not None else attempt_weight) * example_weight)
    first_eos = comp_ids.index(eos)
    comp_w = [w if i <= first_eos else 0.0 for i, w in enumerate(comp_w)]
    fb_start = next((len(prompt_ids) + i for i, f in enumerate(is_fb) if f), None)
    return TokenizedExample(
        input_ids=prompt_ids + comp_ids,
        weights=[prompt_weight] * len(prompt_ids) + comp_w,
        prompt_len=len(prompt_ids),
        feedback_start=fb_start,
    )


def prepare_dataset(dataset: "datasets.Dataset", tokenizer: Any, config: TrainConfig) -> tuple["datasets.Dataset", dict[str, int]]:
    """Buffer rows -> a `datasets.Dataset` of input_ids, loss_weights, length.
    Rows longer than `max_length` tokens are dropped and counted."""
    import datasets

    for col in ("prompt", "completion"):
        if col not in dataset.column_names:
            raise TripostError(f"the training set has no {col!r} column (columns: {', '.join(dataset.column_names)})")
    if config.use_example_weight and "weight" not in dataset.column_names:
        raise TripostError("use_example_weight is on but the training set has no 'weight' column")
    fmt = PromptFormat(template=config.prompt_template, chat=config.chat, system=config.system)
    cols: dict[str, list] = {"input_ids": [], "loss_weights": [], "length": []}
    dropped = 0
    # Only examples built from improvements train their feedback at
    # feedback_weight (the buffer's `weighted_feedback`; the authors'
    # utils/dataset.py:264-276 weighs from "\nFeedback:" only where the
    # example's start text is "\nFeedback:", train_self_improve_rl_noeval.py:553-557).
    # Direct and gold examples train at attempt_weight throughout. A buffer
    # saved before the column existed weighs every feedback, as it was made to.
    weighted = "weighted_feedback" in dataset.column_names
    for row in dataset:
        ex_w = float(row["weight"]) if config.use_example_weight else 1.0
        if not math.isfinite(ex_w) or ex_w < 0:
            raise TripostError(f"example weight must be a finite number >= 0, got {row['weight']!r}")
        fb_w = config.feedback_weight if (not weighted or row["weighted_feedback"]) else config.attempt_weight
        ex = tokenize_example(
            tokenizer, build_prompt(tokenizer, row["prompt"], fmt), row["completion"],
            prompt_weight=config.prompt_weight, attempt_weight=config.attempt_weight,
            feedback_weight=fb_w, example_weight=ex_w,
            revised_attempt_weight=config.revised_attempt_weight,
        )
        if len(ex) > config.max_length:
            dropped += 1
            continue
        cols["input_ids"].append(ex.input_ids)
        cols["loss_weights"].append(ex.weights)
        cols["length"].append(len(ex))
    if not cols["input_ids"]:
        raise TripostError(f"no training examples left: {len(dataset)} rows, {dropped} longer than max_length={config.max_length} tokens")
    out = datasets.Dataset.from_dict(cols)
    return out, {"rows": len(dataset), "examples": len(out), "dropped_overlong": dropped}


@dataclass
class WeightedCollator:
    """Pads on the right (causal training: positions count from 0 in every row)
    to the longest example of the batch; padding gets weight 0."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, "torch.Tensor"]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        weights = torch.zeros((len(features), width), dtype=torch.float32)
        for r, f in enumerate(features):
            n = len(f["input_ids"])
            ids[r, :n] = torch.as_tensor(f["input_ids"], dtype=torch.long)
            mask[r, :n] = 1
            weights[r, :n] = torch.as_tensor(f["loss_weights"], dtype=torch.float32)
        return {"input_ids": ids, "attention_mask": mask, "loss_weights": weights}


@dataclass
class PackedCollator:
    """Concatenates a micro-batch's examples into one row: `position_ids`
    restart at 0 per example, `packed_seq_lens` tells `packed_attention`
    where each example ends, and each example's first token weighs 0 (it
    would be predicted from the previous example's last token)."""

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        ids: list[int] = []
        weights: list[float] = []
        positions: list[int] = []
        lens: list[int] = []
        for f in features:
            n = len(f["input_ids"])
            ids += list(f["input_ids"])
            weights += [0.0] + list(f["loss_weights"][1:])
            positions += range(n)
            lens.append(n)
        return {
            "input_ids": torch.tensor([ids], dtype=torch.long),
            "position_ids": torch.tensor([positions], dtype=torch.long),
            "loss_weights": torch.tensor([weights], dtype=torch.float32),
            "packed_seq_lens": lens,
        }


class LengthBucketSampler:
    """Indices in batches of similar length, batches in random order.

    A random permutation is cut into mega-batches of `mega` batches, each
    sorted by length and cut into batches; the batch order is then shuffled
    (the longest batch first, so an out-of-memory error shows at step 1) and
    a short last batch stays last, so consecutive `batch_size` indices are
    always one batch. Unlike the Trainer's own length-grouped sampler, which
    keeps at least four mega-batches, a small buffer is sorted whole: with a
    few hundred examples that is the difference between grouping and not.
    Randomness comes from torch's global generator (the Trainer seeds it and
    restores it on resume), as in transformers' LengthGroupedSampler."""

    def __init__(self, lengths: Sequence[int], batch_size: int, mega: int = 50) -> None:
        self.lengths = [int(x) for x in lengths]
        self.batch_size = batch_size
        self.mega = mega

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        import torch

        n, bs = len(self.lengths), self.batch_size
        perm = torch.randperm(n).tolist()
        size = bs * self.mega
        batches: list[list[int]] = []
        for i in range(0, n, size):
            chunk = sorted(perm[i : i + size], key=lambda k: self.lengths[k], reverse=True)
            batches += [chunk[j : j + bs] for j in range(0, len(chunk), bs)]
        tail = [batches.pop()] if batches and len(batches[-1]) < bs else []
        batches = [batches[k] for k in torch.randperm(len(batches)).tolist()]
        if batches:
            top = max(range(len(batches)), key=lambda k: max(self.lengths[i] for i in batches[k]))
            batches[0], batches[top] = batches[top], batches[0]
        return iter([i for b in batches + tail for i in b])


def load_buffer_dataset(folder: str | Path) -> "datasets.Dataset":
    """The training set saved by `tripost buffer` (DIR or DIR/dataset)."""
    import datasets

    path = Path(folder)
    if not path.exists():
        raise TripostError(f"buffer folder {path} does not exist")
    if (path / "dataset").is_dir():
        path = path / "dataset"
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TripostError(f"cannot read the buffer dataset in {path}: {first}") from None
    if isinstance(ds, datasets.DatasetDict):
        raise TripostError(f"{path} holds several splits; point --buffer at one dataset")
    if len(ds) == 0:
        raise TripostError(f"the buffer in {path} is empty")
    return ds
