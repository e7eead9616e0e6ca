"""Which problems a command or a run works on: one rule for all of them.

    problems = select_problems(["arithmetic"], split="test", subsets=("seen", "unseen"), n=20, held_out=True)

Problems come from the families' generators (`sample_problems`) or, with
`data`, from a JSON-lines file (`load_problems`). Either way only problems
of the split and subsets asked for are kept: a file's rows carry their own
`split` and `subset`; a row without a `split` is split by a hash of its
question like a generated problem (about 80% train, 10% val, 10% test), and
one without a `subset` is seen. So a `test` row never reaches training, nor
a `train` row an evaluation, and `tripost eval --data` measures a file's
test rows only: a file meant wholly for evaluation marks its rows
`"split": "test"`.

`check_held_out` refuses training problems for a measurement; `select_problems`
applies it when asked (`held_out=True`), and `evaluate`, `sharpen` and `gap`
apply it again to whatever problems they are given.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from tripost.errors import TripostError, clip
from tripost.tasks.base import SPLITS, SUBSETS, Problem, sample_problems
from tripost.tasks.external import load_problems
from tripost.tasks.registry import get_task

TRAIN_SPLIT_REFUSAL = (
    "refusing to evaluate on the train split: evaluation is on held-out problems (use --split test or val, or pass --allow-train)"
)


def check_held_out(problems: Sequence[Problem], allow_train: bool = False) -> None:
    """Refuse training problems: accuracy on them says nothing about learning."""
    train = [p for p in problems if p.split == "train"]
    if train and not allow_train:
        raise TripostError(
            f"refusing to evaluate on {len(train)} problem(s) of the train split (e.g. {train[0].id}); "
            "evaluate on held-out problems, or allow it explicitly (--allow-train)"
        )


def select_problems(
    families: Sequence[str],
    *,
    split: str,
    n: int,
    subsets: Sequence[str] = ("seen",),
    preset: str = "small",
    seed: int = 0,
    data: str | Path | None = None,
    shuffle_salt: str | None = None,
    held_out: bool = False,
    allow_train: bool = False,
) -> list[Problem]:
    """Problems of `families` x `subsets` in one `split`, family by family.

    Generated: `n` per family and subset, in order (`sample_problems` with
    `preset` and `seed`). From `data`: the file's rows of `split` and
    `subsets`, in file order, at most `n` per family; a file with none is an
    error. `shuffle_salt`: shuffle the whole list with
    `random.Random(f"{shuffle_salt}|{seed}")` (what `tripost run` does, so
    that train and eval problems mix families). `held_out`: refuse the train
    split unless `allow_train` (an evaluation).
    """
    if held_out and split == "train" and not allow_train:
        raise TripostError(TRAIN_SPLIT_REFUSAL)
    if split not in SPLITS:
        raise TripostError(f"unknown split {clip(split)}; choose from {', '.join(SPLITS)}")
    if not subsets or any(s not in SUBSETS for s in subsets):
        raise TripostError(f"subsets must name one or more of {', '.join(SUBSETS)}, got {clip(list(subsets))}")
    if n < 1:
        raise TripostError(f"the number of problems must be at least 1, got {n}")
    tasks = [get_task(f) for f in families]  # an unknown family fails before any file is read
    out: list[Problem] = []
    if data:
        for task in tasks:
            rows = [p for p in load_problems(data, task.name) if p.split == split and p.subset in subsets]
            out += rows[:n]
        if not out:
            raise TripostError(f"{data}: no {split} problems of subset {' or '.join(subsets)} (a row without a 'split' field is "
                               f"split by a hash of its question; mark rows \"split\": \"{split}\" to use them here)")
    else:
        for task in tasks:
            if not any(task.levels(preset, s) for s in SUBSETS):
                raise TripostError(f"the {task.name} family has no problem generator: pass its problems with --data FILE.jsonl")
            for subset in subsets:
                out += sample_problems(task, split=split, subset=subset, preset=preset, n=n, seed=seed)
    if shuffle_salt is not None:
        random.Random(f"{shuffle_salt}|{seed}").shuffle(out)
    if held_out:
        check_held_out(out, allow_train)
    return out


__all__ = ["TRAIN_SPLIT_REFUSAL", "check_held_out", "select_problems"]
