"""The student's problem prompt.

The instruction comes from prompts/student.txt (`{question}` marks where the
question goes) and asks for the trajectory format of tripost.format: numbered
steps, then `(Final response) So the answer is X.`. When the tokenizer has a
chat template the instruction becomes the user turn and the prompt ends where
the assistant's turn begins (SmolLM2-Instruct was tuned that way); without
one, a plain "Answer:" line follows. The same string is the prompt for
sampling, scoring and training, so the student always sees one format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tripost.errors import TripostError
from tripost.paths import read_prompt

CHAT_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class PromptFormat:
    """How to render a problem prompt.

    chat: "auto" uses the tokenizer's chat template when it has one, "on"
    requires one, "off" never uses it. system: a system message for the chat
    template (None keeps the template's own default). plain_suffix: what
    follows the instruction without a chat template."""

    template: str = "student.txt"
    chat: str = "auto"
    system: str | None = None
    plain_suffix: str = "\nAnswer:\n"

    def __post_init__(self) -> None:
        if self.chat not in CHAT_MODES:
            raise TripostError(f"unknown chat mode {self.chat!r}; choose from {', '.join(CHAT_MODES)}")


def render_instruction(question: str, template: str = "student.txt") -> str:
    """The instruction text with the question filled in (a literal replace, so
    braces in a question are safe)."""
    text = read_prompt(template)
    if "{question}" not in text:
        raise TripostError(f"prompt template {template!r} has no {{question}} placeholder")
    return text.replace("{question}", question.strip()).rstrip() + "\n"


def uses_chat(tokenizer: Any, fmt: PromptFormat) -> bool:
    has = bool(getattr(tokenizer, "chat_template", None))
    if fmt.chat == "on" and not has:
        raise TripostError("the student's tokenizer has no chat template (use chat mode 'auto' or 'off')")
    return has and fmt.chat != "off"


def build_prompt(tokenizer: Any, question: str, fmt: PromptFormat | None = None) -> str:
    """The full prompt string for one question; the attempt is generated after it."""
    fmt = fmt or PromptFormat()
    instruction = render_instruction(question, fmt.template)
    if not uses_chat(tokenizer, fmt):
        return instruction.rstrip("\n") + fmt.plain_suffix
    messages = [{"role": "user", "content": instruction.rstrip("\n")}]
    if fmt.system is not None:
        messages.insert(0, {"role": "system", "content": fmt.system})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def build_prompts(tokenizer: Any, questions: list[str], fmt: PromptFormat | None = None) -> list[str]:
    return [build_prompt(tokenizer, q, fmt) for q in questions]


def end_of_turn(tokenizer: Any) -> str:
    """What closes the student's answer in training targets: the EOS text
    (`<|im_end|>` for SmolLM2's chat format), so a trained student stops."""
    return tokenizer.eos_token or ""
