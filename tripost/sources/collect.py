"""One collection into a log, as `tripost run`'s collect stage and `tripost
collect` both do it: check that the log can be resumed, open the student
only if the source samples it, build the `Job`, collect, and write the
summary beside the log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tripost.fileio import atomic_write_json
from tripost.log import check_resumable
from tripost.sources.base import Job, Source, SourceResult
from tripost.sources.settings import CollectSettings
from tripost.student.base import StudentLike
from tripost.tasks.base import Problem


def collect_to(
    source: Source,
    settings: CollectSettings,
    problems: Sequence[Problem],
    log_path: Path,
    summary_path: Path,
    *,
    open_student: Callable[[], StudentLike],
    teacher: Any = None,
    iteration: int = 0,
    seed: int = 0,
    config_hash: str = "",
    progress: bool = True,
    on_start: Callable[[], None] | None = None,
) -> SourceResult:
    """Collect `problems` with `source` into `log_path` (resuming it) and write
    the summary (`SourceResult.to_dict`) to `summary_path`. A torn log is
    refused before anything loads (tripost.log.check_resumable); `on_start`
    runs once it has passed, before the student loads (`tripost collect`
    writes its config.json there). `open_student` is called only when the
    source samples the student (the demo source does not)."""
    check_resumable(log_path)
    if on_start is not None:
        on_start()
    student, info = None, {}
    if getattr(source, "needs_student", True):
        student = open_student()
        info = settings.student_info(student, seed)
    job = Job(problems, log_path, iteration=iteration, seed=seed, config_hash=config_hash, student_info=info, progress=progress)
    result = source.collect(job, student, teacher)
    atomic_write_json(summary_path, result.to_dict(), sort_keys=True, ensure_ascii=True)
    return result


__all__ = ["collect_to"]
