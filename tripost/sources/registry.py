"""The data sources by name, imported on first use.

Adding a source: one file in tripost/sources/ with a class that has `name`,
`needs_teacher`, `from_settings(settings, teacher_concurrency)` and
`collect(job, student, teacher)` (the `Source` protocol of
tripost.sources.base), and one line here. `tripost run` (collect.source) and
`tripost collect --source` find it by its name.
"""

from __future__ import annotations

from typing import Any

from tripost.registry import Registry

SOURCES = Registry("data source", {
    "teacher": "tripost.sources.teacher:TeacherSource",  # TriPosT's interactive editing
    "rejection": "tripost.sources.rejection:RejectionSource",  # the student's own correct samples (STaR/LMSI)
    "sharpen": "tripost.sources.sharpen:SharpenSource",  # the student's best-of-N by its own likelihood
    "guided": "tripost.sources.guided:GuidedSource",  # Guided Self-Improvement for the hard tail
    "self_verified": "tripost.sources.selfverify:SelfVerifiedSource",  # kept or weighed by the student's own verifier (Song et al. 2024)
    "demo": "tripost.sources.demo:DemoSource",  # TriPosT's ablation: the LLM teacher's own attempts (or, with the scripted teacher, family-made wrong ones) fixed by the teacher, no student attempt
})
SOURCE_NAMES = SOURCES.names


def source_class(name: str) -> Any:
    """The class registered under `name`; an unknown name is an error listing the known ones."""
    return SOURCES.get(name)


def make_source(settings: Any, teacher_concurrency: int) -> Any:
    """The source `settings.source` names, built from the collection settings
    (tripost.sources.settings.CollectSettings); its own config checks run here."""
    return source_class(settings.source).from_settings(settings, teacher_concurrency=teacher_concurrency)


__all__ = ["SOURCES", "SOURCE_NAMES", "make_source", "source_class"]
