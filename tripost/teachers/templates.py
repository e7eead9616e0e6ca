"""Teacher prompt templates (prompts/teacher/FAMILY/{feedback,improve}.txt).

A template is plain text in sections:

    # comment lines (before the first section) are ignored
    === system ===
    instructions
    === example user ===
    a few-shot request
    === example assistant ===
    its answer
    ... more examples ...
    === user ===
    Question: {question}
    ...

`{question}`, `{options}`, `{attempt}` and `{feedback}` are filled in; any
other brace is left alone (arithmetic has plenty). Families without their
own templates use the generic `qa` ones. The few-shot examples are written
by scripts/make_fewshot.py from the scripted teacher.

The user message can end with a `<tripost-request>` block: the request as
JSON (problem with its gold answer, attempt, feedback). It makes a prompt
self-describing, so `tripost serve-teacher --backend scripted` (or any
service) can answer it exactly; an LLM reads it as reference material.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tripost.errors import TripostError
from tripost.paths import prompts_dir
from tripost.tasks.base import Problem
from tripost.teachers.chat import ChatMessage

KINDS = ("feedback", "improve")
GENERIC_FAMILY = "qa"
_HEADER_RE = re.compile(r"^=== (system|example user|example assistant|user) ===\s*$")
_FIELD_RE = re.compile(r"\{(question|options|attempt|feedback)\}")
_BLOCK_RE = re.compile(r"<tripost-request>\s*(\{.*?\})\s*</tripost-request>", re.DOTALL)
BLOCK_VERSION = 1


@dataclass(frozen=True)
class Template:
    name: str
    system: str
    examples: tuple[tuple[str, str], ...]  # (user, assistant)
    user: str

    def messages(self, fields: dict[str, str]) -> tuple[ChatMessage, ...]:
        out: list[ChatMessage] = []
        for u, a in self.examples:
            out.append(ChatMessage("user", u))
            out.append(ChatMessage("assistant", a))
        out.append(ChatMessage("user", fill(self.user, fields)))
        return tuple(out)


def fill(text: str, fields: dict[str, str]) -> str:
    return _FIELD_RE.sub(lambda m: fields.get(m.group(1), ""), text)


def parse_template(text: str, name: str) -> Template:
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        m = _HEADER_RE.match(line)
        if m:
            sections.append((m.group(1), []))
        elif sections:
            sections[-1][1].append(line)
        elif line.strip() and not line.startswith("#"):
            raise TripostError(f"prompt template {name}: text before the first '=== system ===' section")
    bodies = [(kind, "\n".join(lines).strip("\n")) for kind, lines in sections]
    kinds = [k for k, _ in bodies]
    if kinds.count("system") != 1 or kinds.count("user") != 1 or kinds[-1] != "user":
        raise TripostError(f"prompt template {name}: needs one 'system' section and one final 'user' section")
    examples: list[tuple[str, str]] = []
    pending: str | None = None
    for kind, body in bodies:
        if kind == "example user":
            if pending is not None:
                raise TripostError(f"prompt template {name}: 'example user' without its 'example assistant'")
            pending = body
        elif kind == "example assistant":
            if pending is None:
                raise TripostError(f"prompt template {name}: 'example assistant' without an 'example user'")
            examples.append((pending, body))
            pending = None
    if pending is not None:
        raise TripostError(f"prompt template {name}: 'example user' without its 'example assistant'")
    system = next(b for k, b in bodies if k == "system")
    user = next(b for k, b in bodies if k == "user")
    return Template(name=name, system=system, examples=tuple(examples), user=user)


@lru_cache(maxsize=64)
def load_template(family: str, kind: str) -> Template:
    if kind not in KINDS:
        raise TripostError(f"unknown teacher prompt kind {kind!r}; expected one of {', '.join(KINDS)}")
    root = prompts_dir() / "teacher"
    for fam in (family, GENERIC_FAMILY):
        path = root / fam / f"{kind}.txt"
        if path.is_file():
            return parse_template(path.read_text(encoding="utf-8"), f"teacher/{fam}/{kind}.txt")
    raise TripostError(f"no teacher prompt template for {family!r}/{kind} in {root}")


def request_fields(problem: Problem, attempt: str, feedback: str | None = None) -> dict[str, str]:
    options = ""
    # Families that list their options inside the question (BBH style) need no second copy.
    if problem.options and not all(str(o) in problem.question for o in problem.options):
        # Leads with a newline so "{question}{options}" reads well with or without options.
        options = "\nOptions:\n" + "\n".join(str(o) for o in problem.options)
    return {
        "question": problem.question.strip(),
        "options": options,
        "attempt": attempt.strip(),
        "feedback": (feedback or "").strip(),
    }


# ---------------------------------------------------------- request block ---


def render_block(kind: str, problem: Problem, attempt: str, feedback: str | None = None) -> str:
    payload = {"v": BLOCK_VERSION, "kind": kind, "problem": problem.to_dict(), "attempt": attempt, "feedback": feedback}
    # Escape '<' so no text inside can close the block early.
    blob = json.dumps(payload, ensure_ascii=False, sort_keys=True).replace("<", "\\u003c")
    return f"<tripost-request>\n{blob}\n</tripost-request>"


@dataclass(frozen=True)
class BlockRequest:
    kind: str
    problem: Problem
    attempt: str
    feedback: str | None


def parse_block(text: str) -> BlockRequest | None:
    """The request block in a user message (the last one if several), or None."""
    matches = _BLOCK_RE.findall(text)
    if not matches:
        return None
    try:
        d: Any = json.loads(matches[-1])
        if d.get("kind") not in KINDS or not isinstance(d.get("attempt"), str):
            raise ValueError("bad kind or attempt")
        problem = Problem.from_dict(d["problem"])
        fb = d.get("feedback")
        if d["kind"] == "improve" and not isinstance(fb, str):
            raise ValueError("improve request without feedback")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise TripostError(f"malformed <tripost-request> block ({e})") from None
    return BlockRequest(kind=d["kind"], problem=problem, attempt=d["attempt"], feedback=fb)
