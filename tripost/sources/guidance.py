"""What a guided round shows the student (tripost.sources.guided): the
prompt templates of each strategy and how they are filled, the plain
instruction, a state reset's gold prefix, the checks that a sample does not
mention its guidance, and the sampler that renders a `GuidedPrompt` for the
student. tripost.sources.guided's docstring says what each strategy is for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from tripost.errors import TripostError
from tripost.format import parse_rationale
from tripost.paths import read_prompt
from tripost.student.base import StudentLike
from tripost.student.prompt import PromptFormat, render_chat, render_instruction
from tripost.tasks import get_task
from tripost.tasks.base import Problem

TEMPLATES = {"answer": "guided/answer.txt", "rationale": "guided/rationale.txt", "interactive": "guided/interactive.txt"}
DEFAULT_FRACTIONS = (0.2, 0.4, 0.6, 0.8)
# Words of the guided templates that a correct rationale has no reason to use.
DEFAULT_LEAK_MARKERS = ("hint", "reference", "previous attempt", "feedback", "teacher")
PLAIN_TEMPLATE = "student.txt"
NO_ATTEMPT = "(no attempt)"
REJECTED_FEEDBACK = "The previous answer is incorrect."


@dataclass(frozen=True)
class GuidedPrompt:
    """What the student is asked: `instruction` is the user-turn text (the plain
    student instruction, or a guided template filled in); `prefix` is text the
    student's answer starts with and that sampling continues (state reset)."""

    problem: Problem
    instruction: str
    prefix: str = ""


class PromptSampler(Protocol):
    """`n` sampled continuations per prompt (the prefix not repeated), in
    prompt order. `seed` makes a call reproducible."""

    def __call__(self, prompts: Sequence[GuidedPrompt], n: int, seed: int) -> list[list[str]]:
        ...


_PLACEHOLDER_RE = re.compile(r"\{(question|hint|attempt)\}")


def fill_template(template: str, **values: str) -> str:
    """One pass over the template, so a question containing `{hint}` stays literal."""
    text = read_prompt(template)
    missing = [k for k in values if "{" + k + "}" not in text]
    if missing:
        raise TripostError(f"prompt template {template!r} has no {{{missing[0]}}} placeholder")
    return _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)).strip(), text).rstrip() + "\n"


def plain_instruction(problem: Problem) -> str:
    """The student's training instruction (tripost.student.prompt.render_instruction)."""
    return render_instruction(problem.question, PLAIN_TEMPLATE)


def reset_prefix(rationale: str, fraction: float) -> tuple[str, int]:
    """(the gold rationale's text up to step k+1, k) for a state reset at
    `fraction`: k = clamp(round(fraction * n), 1, max(1, n - 1)); the student
    writes at least one numbered step itself unless the gold has only one."""
    parsed = parse_rationale(rationale)
    n = parsed.n_steps
    if n == 0:
        raise TripostError("state reset needs a gold rationale with numbered steps")
    k = min(max(1, math.floor(fraction * n + 0.5)), max(1, n - 1))
    prefix = parsed.text[: parsed.offset_of(k + 1)]
    if not prefix.endswith("\n"):
        prefix += "\n"
    return prefix, k


def first_wrong_step(problem: Problem, rationale: str) -> int | None:
    """The family's step checker on a rationale: the first wrong step (n+1: the
    final response), None when every step is right. Families without a step
    checker (qa) have nothing to say: TripostError."""
    task = get_task(problem.family)
    if not task.scripted:
        raise TripostError(f"{problem.family}: no step checker")
    return task.check_steps(problem, rationale).first_error_step


def mentions_guidance(text: str, markers: Sequence[str]) -> str | None:
    """The first marker `text` uses as a word (case-insensitive), else None."""
    for m in markers:
        if re.search(rf"(?<![A-Za-z]){re.escape(m.strip())}(?![A-Za-z])", text, re.IGNORECASE):
            return m
    return None


def normalise(text: str) -> str:
    """Whitespace-collapsed lower case: what "the same text" means for a copied reference."""
    return re.sub(r"\s+", " ", text).strip().lower()


def guidable(problem: Problem, strategy: str) -> bool:
    """Whether `strategy` has something to show for `problem`."""
    if strategy == "answer":
        return bool(str(problem.answer).strip())
    if strategy == "rationale":
        return bool(problem.rationale.strip())
    if strategy == "state_reset":
        return bool(problem.rationale.strip()) and parse_rationale(problem.rationale).n_steps > 0
    return True


def guided_student_sampler(student: StudentLike, params: Any, prompt_format: Any = None, counter: dict[str, int] | None = None) -> PromptSampler:
    """A `PromptSampler` over a loaded `tripost.student.Student`. The user turn
    is rendered exactly as tripost.student.prompt.build_prompt renders the
    training prompt (so round 0's prompt *is* the training prompt), and a
    state reset's prefix is appended after the assistant turn's start.
    `counter`, if given, accumulates "sequences" and "tokens" generated."""
    fmt = prompt_format or PromptFormat()
    if params.greedy:
        raise TripostError("guided sampling draws several samples per problem: use a temperature above 0")

    def render(instruction: str) -> str:
        return render_chat(student.tokenizer, [instruction.rstrip("\n")], fmt)

    def sampler(prompts: Sequence[GuidedPrompt], n: int, seed: int) -> list[list[str]]:
        texts = [render(gp.instruction) + gp.prefix for gp in prompts]
        rows = student.sample(texts, replace(params, n=n, seed=seed))
        if counter is not None:
            counter["sequences"] = counter.get("sequences", 0) + sum(len(row) for row in rows)
            counter["tokens"] = counter.get("tokens", 0) + sum(g.n_tokens for row in rows for g in row)
        return [[g.text for g in row] for row in rows]

    return sampler


__all__ = [
    "DEFAULT_FRACTIONS", "DEFAULT_LEAK_MARKERS", "NO_ATTEMPT", "PLAIN_TEMPLATE", "REJECTED_FEEDBACK", "TEMPLATES", "GuidedPrompt",
    "PromptSampler", "fill_template", "first_wrong_step", "guidable", "guided_student_sampler", "mentions_guidance", "normalise",
    "plain_instruction", "reset_prefix",
]
