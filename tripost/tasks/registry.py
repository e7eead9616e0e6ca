"""The task families by name. Families are imported on first use, so that
`tripost tasks list` and every command's startup stay fast."""

from __future__ import annotations

from tripost.registry import Registry
from tripost.tasks.base import Task

TASKS = Registry("task family", {
    "arithmetic": "tripost.tasks.arithmetic:ArithmeticTask",
    "word_sorting": "tripost.tasks.word_sorting:WordSortingTask",
    "date_understanding": "tripost.tasks.date_understanding:DateUnderstandingTask",
    "logical_deduction": "tripost.tasks.logical_deduction:LogicalDeductionTask",
    "qa": "tripost.tasks.qa:QATask",
})
FAMILIES = TASKS.names
_instances: dict[str, Task] = {}


def get_task(name: str) -> Task:
    """The family registered under `name` (one instance per process); an
    unknown name is one error listing the families."""
    if name not in _instances:
        _instances[name] = TASKS.get(name)()
    return _instances[name]


__all__ = ["FAMILIES", "TASKS", "get_task"]
