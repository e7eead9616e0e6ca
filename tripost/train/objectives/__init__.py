"""Training objectives by name (`train.objective`), imported on first use.

An objective is an `Objective` in its own module: `train(config, dataset,
out_dir) -> dict` trains `config.student` on a saved buffer into `out_dir`
and returns what it measured (JSON-able; at least `steps`, `final_loss` and
`tokens`, which `tripost run` records, with `pairs` where it has them), and
`summary(metrics, out_dir) -> str` is what `tripost train` prints of them:

    sft   weighted SFT, TriPosT's (sft.py, over tripost.train.trainer)
    dpo   preference optimisation on (chosen, rejected) pairs through TRL's
          DPOTrainer: RLHF-sharpening (dpo.py)

docs/design.md ("How to add an objective") says how to add one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tripost.registry import Registry

# What `tripost run` records of an objective's metrics, per iteration (those it has).
RECORDED = ("steps", "final_loss", "tokens", "pairs")


@dataclass(frozen=True)
class Objective:
    """One training objective: how it trains, and how `tripost train` says what it did."""

    train: Callable[..., dict[str, Any]]  # (config, dataset, out_dir) -> metrics
    summary: Callable[[dict[str, Any], "str | Path"], str]  # (metrics, out_dir) -> text

    def record(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """What `tripost run` keeps of `metrics` for the iteration."""
        return {k: metrics[k] for k in RECORDED if k in metrics}


OBJECTIVES = Registry("train objective", {
    "sft": "tripost.train.objectives.sft:OBJECTIVE",
    "dpo": "tripost.train.objectives.dpo:OBJECTIVE",
})

__all__ = ["OBJECTIVES", "Objective", "RECORDED"]
