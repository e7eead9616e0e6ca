"""Training objectives by name (`train.objective`), imported on first use.

An objective is a module with `train(config, dataset, out_dir) -> dict`
(the steps, final loss and tokens `tripost run` records; more keys as it
has them) that trains `config.student` on a saved buffer into `out_dir`:

    sft   weighted SFT, TriPosT's (sft.py, over tripost.train.trainer)
    dpo   preference optimisation on (chosen, rejected) pairs through TRL's
          DPOTrainer: RLHF-sharpening (dpo.py)

docs/design.md ("How to add an objective") says how to add one.
"""

from __future__ import annotations

from tripost.registry import Registry

OBJECTIVES = Registry("train objective", {
    "sft": "tripost.train.objectives.sft:train",
    "dpo": "tripost.train.objectives.dpo:train",
})

__all__ = ["OBJECTIVES"]
