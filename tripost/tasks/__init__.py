"""Task families and the registry that names them.

    from tripost.tasks import get_task, sample_problems
    task = get_task("arithmetic")
    problems = sample_problems(task, split="train", subset="seen", preset="small", n=8, seed=0)
"""

from __future__ import annotations

import importlib

from tripost.errors import TripostError
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

# name -> (module, class). Imported lazily so `tripost tasks list` stays fast.
_REGISTRY: dict[str, tuple[str, str]] = {
    "arithmetic": ("tripost.tasks.arithmetic", "ArithmeticTask"),
    "word_sorting": ("tripost.tasks.word_sorting", "WordSortingTask"),
    "date_understanding": ("tripost.tasks.date_understanding", "DateUnderstandingTask"),
    "logical_deduction": ("tripost.tasks.logical_deduction", "LogicalDeductionTask"),
    "qa": ("tripost.tasks.qa", "QATask"),
}

FAMILIES = tuple(_REGISTRY)
_cache: dict[str, Task] = {}


def get_task(name: str) -> Task:
    if name not in _REGISTRY:
        raise TripostError(f"unknown task family {name!r}; choose from {', '.join(FAMILIES)}")
    if name not in _cache:
        module, cls = _REGISTRY[name]
        _cache[name] = getattr(importlib.import_module(module), cls)()
    return _cache[name]


__all__ = [
    "FAMILIES",
    "PRESETS",
    "SPLITS",
    "SUBSETS",
    "Problem",
    "StepCheck",
    "Task",
    "get_task",
    "problem_id",
    "sample_problems",
    "split_of",
]
