"""Teachers behind one interface; `make_teacher(spec)` builds one from a spec.

Specs (DESIGN.md): `scripted`, `openai:MODEL`, `anthropic:MODEL`, `hf:PATH`,
`replay:LOG`.
"""

from __future__ import annotations

from tripost.errors import TripostError
from tripost.teachers.base import FeedbackReply, ImproveReply, Teacher, TeacherCall

SPECS = ("scripted", "openai:MODEL", "anthropic:MODEL", "hf:PATH", "replay:LOG")


def make_teacher(spec: str) -> Teacher:
    kind, _, arg = spec.partition(":")
    if kind == "scripted" and not arg:
        from tripost.teachers.scripted import ScriptedTeacher

        return ScriptedTeacher()
    if kind in {"openai", "anthropic", "hf", "replay"}:
        raise TripostError(f"teacher backend {kind!r} is not built yet; available: scripted")
    raise TripostError(f"unknown teacher spec {spec!r}; expected one of: {', '.join(SPECS)}")


__all__ = ["FeedbackReply", "ImproveReply", "Teacher", "TeacherCall", "make_teacher", "SPECS"]
