"""The task families by name. Families are imported on first use, so that
`tripost tasks list` and every command's startup stay fast."""

from __future__ import annotations

import importlib

from tripost.errors import TripostError, clip
from tripost.tasks.base import Task

# name -> (module, class)
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
        raise TripostError(f"unknown task family {clip(name)}; choose from {', '.join(FAMILIES)}")
    if name not in _cache:
        module, cls = _REGISTRY[name]
        _cache[name] = getattr(importlib.import_module(module), cls)()
    return _cache[name]


__all__ = ["FAMILIES", "get_task"]
