"""Weighted SFT (TriPosT's objective): per-token loss weights over the
buffer's examples (tripost.train.loss), trained by tripost.train.trainer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tripost.train.config import TrainConfig

if TYPE_CHECKING:
    import datasets


def train(config: TrainConfig, dataset: "datasets.Dataset", out_dir: str | Path) -> dict[str, Any]:
    """The objective's entry (tripost.train.objectives): weighted SFT on a
    buffer of (prompt, completion) examples; what `tripost run` records of it."""
    from tripost.train.trainer import train_sft  # the trainer imports torch and transformers

    res = train_sft(config, dataset, out_dir)
    return {"steps": res.steps, "final_loss": res.final_loss, "tokens": res.tokens}


__all__ = ["train"]
