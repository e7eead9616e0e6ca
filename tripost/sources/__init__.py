"""Data sources: training problems -> interaction-log records.

One interface (`Source`, tripost/sources/base.py), a registry by name
(registry.py), the settings every source is built from (settings.py), and
one file per source:

    teacher    TriPosT's interactive editing: the teacher checks and fixes the
               student's attempts (teacher.py)
    rejection  the student's own correct samples, no teacher: STaR/LMSI (rejection.py)
    sharpen    the student's best of N by its own likelihood, unchecked:
               SFT-sharpening (sharpen.py)
    guided     Guided Self-Improvement: extra guided rounds for the problems the
               student rarely solves (guided.py)
    self_verified  the student's own samples kept (or weighed) by its own
               verifier, no gold answer: Song et al. 2024 (selfverify.py)
    demo       TriPosT's ablation: attempts the LLM teacher samples at
               temperature 1.0 (with the scripted teacher: wrong attempts the
               task family makes from the gold rationale), fixed by the
               teacher, no student attempt (demo.py)

docs/design.md ("How to add … a data source") says how to add one.
"""

from tripost.sources.base import AttemptSampler, Job, Source, SourceResult, judge, judge_attempt, record_key, sample_seed, student_sampler
from tripost.sources.registry import SOURCE_NAMES, SOURCES, make_source, source_class

__all__ = [
    "AttemptSampler",
    "Job",
    "SOURCES",
    "SOURCE_NAMES",
    "Source",
    "SourceResult",
    "judge",
    "judge_attempt",
    "make_source",
    "record_key",
    "sample_seed",
    "source_class",
    "student_sampler",
]
