"""Teacher prompt templates (prompts/teacher/FAMILY/{feedback,improve,attempt}.txt).

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

The attempt prompt (the teacher writes an attempt of its own: the demo
source's LLM attempts, tripost.sources.demo) is built here when a family has
no `attempt.txt` of its own (`attempt_template`), as the authors' is: the
question and a few gold rationales of training problems as examples, no
feedback (jasonyux/TriPosT models/wrappers.py, LLM_MultistepArithmetic and
its siblings, few-shot `EXAMPLES_*_RATIONALE` of prompts/*.py). A file
`prompts/teacher/FAMILY/attempt.txt` in the format above replaces it.

The user message can end with a `<tripost-request>` block: the request as
JSON (problem with its gold answer, attempt, feedback). It makes a prompt
self-describing, so `tripost serve-teacher --backend scripted` (or any
service) can answer it exactly; an LLM reads it as reference material.
An attempt's block holds no gold unless asked (`render_block(gold=True)`):
the authors' attempt model sees the question only, and an LLM that read the
answer would rarely be wrong. It holds the attempt's `sample` number, so a
scripted server can play a sampler (tripost/serve/attempts.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tripost.errors import TripostError
from tripost.paths import prompts_dir
from tripost.tasks import FAMILIES, get_task, sample_problems
from tripost.tasks.base import Problem
from tripost.teachers.chat import ChatMessage

KINDS = ("feedback", "improve", "attempt")
GENERIC_FAMILY = "qa"
# The problem fields an attempt's block leaves out unless asked: the gold
# answer and rationale, and `meta`, which holds the solved puzzle or date
# chain of some families.
GOLD_FIELDS = ("answer", "rationale", "meta")
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
    if kind == "attempt":
        path = root / family / "attempt.txt"
        if path.is_file():
            return parse_template(path.read_text(encoding="utf-8"), f"teacher/{family}/attempt.txt")
        return attempt_template(family)
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


# ----------------------------------------------------------- attempt prompt ---

ATTEMPT_HINTS = {
    "arithmetic": "a multi-step arithmetic problem. Split the expression as the examples do and compute inside parentheses first",
    "word_sorting": "a word sorting problem. Compare the words letter by letter, as the examples do",
    "date_understanding": "a date question. Work from the date the question gives, one step at a time",
    "logical_deduction": "a logical deduction puzzle. Apply the clues one at a time, as the examples do",
    GENERIC_FAMILY: "a question",
}
ATTEMPT_SYSTEM = """\
Answer {hint}.
Think step by step: write numbered steps "(1) ...", "(2) ...", one per line, in the style of the examples, then end with the line
"(Final response) So the answer is ANSWER."
Write nothing after that line. The request may end with a <tripost-request> block of machine-readable data for tools; it is not part of the question."""
ATTEMPT_USER = "Question: {question}{options}"
ATTEMPT_EXAMPLES = 3  # the authors' arithmetic prompt has 3 (prompts/multistep_arithmetic.py, EXAMPLES_MULTISTEP_ARITHMETIC_RATIONALE)
ATTEMPT_SEED = 20241  # the examples' problems: training problems, not make_fewshot.py's (seed 20240)


@lru_cache(maxsize=16)
def attempt_template(family: str) -> Template:
    """The built-in attempt prompt of `family`: instructions, then
    `ATTEMPT_EXAMPLES` (question, gold rationale) pairs of the family's
    training problems (small preset, seen subset, a fixed seed) as the
    examples. A family with no generated problems (qa, external data) gets
    one example from each generated family, as the generic feedback prompt
    does."""

    def examples(fam: str, n: int) -> list[tuple[str, str]]:
        problems = sample_problems(get_task(fam), split="train", subset="seen", preset="small", n=n, seed=ATTEMPT_SEED)
        return [(fill(ATTEMPT_USER, request_fields(p, "")), p.rationale.strip()) for p in problems]

    def generated(fam: str) -> bool:
        try:
            return bool(get_task(fam).scripted)
        except (ImportError, TripostError):
            return False

    if generated(family):
        shots = examples(family, ATTEMPT_EXAMPLES)
        hint = ATTEMPT_HINTS.get(family, ATTEMPT_HINTS[GENERIC_FAMILY])
    else:
        shots = [shot for fam in FAMILIES if generated(fam) for shot in examples(fam, 1)]
        hint = ATTEMPT_HINTS[GENERIC_FAMILY]
    return Template(name=f"teacher/{family}/attempt (built in)", system=ATTEMPT_SYSTEM.format(hint=hint),
                    examples=tuple(shots), user=ATTEMPT_USER)


# ---------------------------------------------------------- request block ---


def render_block(kind: str, problem: Problem, attempt: str, feedback: str | None = None, *, sample: int = 0,
                 gold: bool | None = None) -> str:
    """The request as a block. `gold` (default: all but attempts): whether
    the problem's gold fields (`GOLD_FIELDS`) are in it; `sample`: an
    attempt's sample number (only attempts carry one)."""
    shown = problem.to_dict()
    if not (kind != "attempt" if gold is None else gold):
        shown = {k: v for k, v in shown.items() if k not in GOLD_FIELDS}
    payload: dict[str, Any] = {"v": BLOCK_VERSION, "kind": kind, "problem": shown, "attempt": attempt, "feedback": feedback}
    if kind == "attempt":
        payload["sample"] = int(sample)
    # Escape '<' so no text inside can close the block early.
    blob = json.dumps(payload, ensure_ascii=False, sort_keys=True).replace("<", "\\u003c")
    return f"<tripost-request>\n{blob}\n</tripost-request>"


@dataclass(frozen=True)
class BlockRequest:
    kind: str
    problem: Problem
    attempt: str
    feedback: str | None
    sample: int = 0  # an attempt's sample number
    gold: bool = True  # whether the problem came with its gold answer (an attempt's block may not)


def parse_block(text: str) -> BlockRequest | None:
    """The request block in a user message (the last one if several), or None."""
    matches = _BLOCK_RE.findall(text)
    if not matches:
        return None
    try:
        d: Any = json.loads(matches[-1])
        if d.get("kind") not in KINDS or not isinstance(d.get("attempt"), str):
            raise ValueError("bad kind or attempt")
        shown = d["problem"]
        gold = isinstance(shown, dict) and "answer" in shown
        if d["kind"] == "attempt" and not gold:
            shown = {"answer": "", "rationale": "", **shown}  # the gold left out: nothing to read it from
        problem = Problem.from_dict(shown)
        fb = d.get("feedback")
        if d["kind"] == "improve" and not isinstance(fb, str):
            raise ValueError("improve request without feedback")
        sample = d.get("sample", 0)
        if isinstance(sample, bool) or not isinstance(sample, int):
            raise ValueError("sample is not an integer")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise TripostError(f"malformed <tripost-request> block ({e})") from None
    return BlockRequest(kind=d["kind"], problem=problem, attempt=d["attempt"], feedback=fb, sample=sample, gold=gold)
