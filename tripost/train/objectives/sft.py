"""Weighted SFT (TriPosT's objective): per-token loss weights over the
buffer's examples (tripost.train.loss), trained by tripost.train.trainer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tripost.train.config import TrainConfig
from tripost.train.objectives import Objective

if TYPE_CHECKING:
    import datasets


def train(config: TrainConfig, dataset: "datasets.Dataset", out_dir: str | Path) -> dict[str, Any]:
    """The objective's entry (tripost.train.objectives): weighted SFT on a
    buffer of (prompt, completion) examples; the run's `TrainResult` as a dict."""
    from tripost.train.trainer import train_sft  # the trainer imports torch and transformers

    return train_sft(config, dataset, out_dir).to_dict()


def summary(m: dict[str, Any], out_dir: str | Path) -> str:
    """What `tripost train` prints of a run's metrics (`train`'s dict)."""
    loss = f"{m['final_loss']:.4f}" if m["final_loss"] is not None else "n/a"
    dropped = m["dropped_overlong"]
    lines = [
        f"trained {m['steps']} steps ({m['epochs']:.2f} epochs) on {m['examples']} examples"
        f"{f' ({dropped} too long, dropped)' if dropped else ''}: "
        f"final loss {loss}, {m['tokens']} tokens in {m['seconds']:.1f} s ({m['tokens_per_second']:.0f} tokens/s)"
    ]
    if m["resumed_from"]:
        lines.append(f"resumed from {m['resumed_from']}")
    lines.append(f"adapter: {m['out_dir']}")
    return "\n".join(lines)


OBJECTIVE = Objective(train=train, summary=summary)

__all__ = ["OBJECTIVE", "summary", "train"]
