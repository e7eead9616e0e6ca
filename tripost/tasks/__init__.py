"""Task families, the registry that names them, and problem selection.

    from tripost.tasks import get_task, sample_problems, select_problems
    task = get_task("arithmetic")
    problems = sample_problems(task, split="train", subset="seen", preset="small", n=8, seed=0)
    held_out = select_problems(["arithmetic", "word_sorting"], split="test", subsets=("seen", "unseen"), n=20, held_out=True)

Layout: `base` (Problem, StepCheck, the Task protocol, split-safe sampling),
`family` (the shared base of the generated families), `external` (records
and --data files), `select` (which problems a command works on), one
subpackage per generated family, and `qa` (answer-only, from files).
"""

from __future__ import annotations

from tripost.tasks.base import (
    PRESETS,
    SPLITS,
    SUBSETS,
    Problem,
    StepCheck,
    Task,
    problem_id,
    sample_problems,
    split_of,
)
from tripost.tasks.external import load_problems, problem_from_record
from tripost.tasks.registry import FAMILIES, get_task
from tripost.tasks.select import check_held_out, select_problems

__all__ = [
    "FAMILIES",
    "PRESETS",
    "SPLITS",
    "SUBSETS",
    "Problem",
    "StepCheck",
    "Task",
    "check_held_out",
    "get_task",
    "load_problems",
    "problem_from_record",
    "problem_id",
    "sample_problems",
    "select_problems",
    "split_of",
]
