"""The student's problem prompt.

The instruction comes from prompts/student.txt (`{question}` marks where the
question goes) and asks for the trajectory format of tripost.format: numbered
steps, then `(Final response) So the answer is X.`. When the tokenizer has a
chat template the instruction becomes the user turn and the prompt ends where
the assistant's turn begins (SmolLM2-Instruct was tuned that way); without
one, a plain "Answer:" line follows. The same string is the prompt for
sampling, scoring and training, so the student always sees one format.

`render_chat` is the one place a conversation becomes prompt text: the
problem prompt (`build_prompt`), the guided collector's prompts
(tripost.sources.guided) and the verifier's follow-up question (tripost.gap) all go
through it, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    """Whether prompts for `tokenizer` go through its chat template (see PromptFormat.chat)."""
    has = bool(getattr(tokenizer, "chat_template", None))
    if fmt.chat == "on" and not has:
        raise TripostError("the student's tokenizer has no chat template (use chat mode 'auto' or 'off')")
    return has and fmt.chat != "off"


def render_chat(tokenizer: Any, turns: Sequence[str], fmt: PromptFormat | None = None) -> str:
    """The prompt text of a conversation, ending where the student's next reply begins.

    `turns` alternate user, assistant, user, ... and end with a user turn.
    With a chat template (`uses_chat`): the template's rendering, with
    `fmt.system` first when set. Without one: the first turn, then
    `fmt.plain_suffix`, then each reply followed by a blank line and each
    later user turn followed by a newline. The turns are used as given:
    callers strip them."""
    fmt = fmt or PromptFormat()
    if len(turns) % 2 != 1:
        raise TripostError(f"a prompt needs alternating user and assistant turns ending with a user turn; got {len(turns)} turn(s)")
    if not uses_chat(tokenizer, fmt):
        text = turns[0] + fmt.plain_suffix
        for reply, ask in zip(turns[1::2], turns[2::2]):
            text += f"{reply}\n\n{ask}\n"
        return text
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    if fmt.system is not None:
        messages.insert(0, {"role": "system", "content": fmt.system})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def build_prompt(tokenizer: Any, question: str, fmt: PromptFormat | None = None) -> str:
    """The full prompt string for one question; the attempt is generated after it."""
    fmt = fmt or PromptFormat()
    return render_chat(tokenizer, [render_instruction(question, fmt.template).rstrip("\n")], fmt)


def build_prompts(tokenizer: Any, questions: list[str], fmt: PromptFormat | None = None) -> list[str]:
    return [build_prompt(tokenizer, q, fmt) for q in questions]
