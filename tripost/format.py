"""The trajectory text format: rationales, feedback, updated answers.

A rationale (TriPosT, Yu et al. 2024, Table 1 and Appendix):

    Let's think step by step.                         <- optional preamble
    (1) This equation can be written as "(A - B)", ...
    (2) Let's calculate A = (-3 + 5 * 2) = (-3 + 10) = 7.
    (Final response) So the answer is -1.

A self-improvement trajectory appends, after the attempt, zero or more rounds of

    Feedback: Step (1) to step (2) are correct. In step (3) the part "..." is
    incorrect. This is because ...
    Updated Answer: <a full rationale again>

and ends with feedback that says "The final response is also correct."

Step k in the whole text is numbered k (1-based). The final response counts as
step n+1 of a rationale with n numbered steps, and feedback that blames it says
"In the final response" instead of "In step (n+1)".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FINAL_PREFIX = "(Final response)"
FEEDBACK_PREFIX = "Feedback:"
UPDATED_PREFIX = "Updated Answer:"
ALL_CORRECT_TAIL = "The final response is also correct."

_STEP_RE = re.compile(r"^\((\d{1,6})\)\s?")
_FINAL_RE = re.compile(r"^\(Final response\)\s?", re.IGNORECASE)
_ANSWER_RE = re.compile(r"the answer is\s*(.*?)\s*\.?\s*$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Rationale:
    """A parsed rationale. `offsets[i]` is where step i+1's line starts in `text`
    (and `final_offset` where the final response starts), so an edit can keep
    everything before a step byte-for-byte: `text[:offsets[k-1]]`."""

    text: str
    preamble: str
    steps: tuple[str, ...]
    final: str | None
    offsets: tuple[int, ...] = ()
    final_offset: int | None = None
    numbers: tuple[int, ...] = ()  # the numbers as written, e.g. (1, 2, 4) when one is skipped

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    @property
    def answer(self) -> str | None:
        return parse_final_answer(self.final) if self.final is not None else None

    def offset_of(self, step: int) -> int:
        """Start of step `step` (1-based; n+1 = the final response; past the end = len(text))."""
        if 1 <= step <= len(self.offsets):
            return self.offsets[step - 1]
        if step == len(self.offsets) + 1 and self.final_offset is not None:
            return self.final_offset
        return len(self.text)


def parse_rationale(text: str) -> Rationale:
    """Split a rationale into preamble, numbered steps and the final response.

    Lenient on purpose: it reads model output. A line starting with `(k)` opens
    a step, `(Final response)` the final response; other lines continue the
    open part. Reading stops at the first `Feedback:` line.
    """
    preamble: list[str] = []
    steps: list[list[str]] = []
    offsets: list[int] = []
    numbers: list[int] = []
    final: list[str] | None = None
    final_offset: int | None = None
    pos = 0
    consumed = len(text)
    for raw in text.splitlines(keepends=True):
        line = raw.rstrip("\r\n")
        stripped = line.strip()
        start = pos + (len(line) - len(line.lstrip()))
        pos += len(raw)
        if stripped.startswith(FEEDBACK_PREFIX):
            consumed = start
            break
        if final is not None:
            # Anything after the final response line belongs to nothing we read.
            continue
        m = _STEP_RE.match(stripped)
        if m:
            steps.append([stripped[m.end():]])
            offsets.append(start)
            numbers.append(int(m.group(1)))
            continue
        m = _FINAL_RE.match(stripped)
        if m:
            final = [stripped[m.end():]]
            final_offset = start
            continue
        if steps:
            steps[-1].append(stripped)
        elif stripped:
            preamble.append(stripped)
    return Rationale(
        text=text[:consumed],
        preamble="\n".join(preamble),
        steps=tuple(" ".join(p for p in s if p).strip() for s in steps),
        final=" ".join(final).strip() if final is not None else None,
        offsets=tuple(offsets),
        final_offset=final_offset,
        numbers=tuple(numbers),
    )


def parse_final_answer(final: str) -> str | None:
    """`So the answer is X.` -> `X` (None when the sentence is absent)."""
    m = _ANSWER_RE.search(final)
    if not m:
        return None
    answer = m.group(1).strip()
    return answer or None


def final_line(answer: str) -> str:
    return f"{FINAL_PREFIX} So the answer is {answer}."


def render_steps(steps: list[str] | tuple[str, ...], start: int = 1) -> str:
    return "\n".join(f"({start + i}) {s}" for i, s in enumerate(steps))


def render_rationale(steps: list[str] | tuple[str, ...], answer: str, preamble: str = "", start: int = 1) -> str:
    """Steps numbered from `start`, then the final response line."""
    parts = [preamble] if preamble else []
    if steps:
        parts.append(render_steps(steps, start))
    parts.append(final_line(answer))
    return "\n".join(parts)


# ---------------------------------------------------------------- feedback ---


@dataclass(frozen=True)
class Feedback:
    """TriPosT's feedback sentence as a value.

    `error_step` is None when everything is correct; otherwise the 1-based step
    that is first wrong, where `n_steps + 1` means the final response.
    """

    n_steps: int
    error_step: int | None
    segment: str = ""
    reason: str = ""

    @property
    def is_correct(self) -> bool:
        return self.error_step is None

    @property
    def blames_final(self) -> bool:
        return self.error_step is not None and self.error_step > self.n_steps

    def render(self) -> str:
        """The sentence, without the `Feedback:` prefix."""
        if self.error_step is None:
            return f"{_correct_prefix(self.n_steps)}{ALL_CORRECT_TAIL}".strip()
        where = "the final response" if self.blames_final else f"step ({self.error_step})"
        segment = self.segment.replace('"', "'")
        reason = self.reason.strip()
        if reason and not reason.endswith("."):
            reason += "."
        text = f'{_correct_prefix(self.error_step - 1)}In {where} the part "{segment}" is incorrect.'
        if reason:
            text += f" This is because {reason[0].lower() + reason[1:] if _lower_ok(reason) else reason}"
        return text


def _lower_ok(reason: str) -> bool:
    # Lower-case the first letter ("This is because the ...") unless it starts
    # a quoted word, a number or an acronym.
    return len(reason) > 1 and reason[0].isupper() and reason[1].islower()


def _correct_prefix(k: int) -> str:
    if k <= 0:
        return ""
    if k == 1:
        return "Step (1) is correct. "
    return f"Step (1) to step ({k}) are correct. "


_FB_ERROR_RE = re.compile(
    r'In (?:step \((\d+)\)|(the final response))\s*,?\s*the part\s*"(.*?)"\s*is incorrect\.?\s*(?:This is because\s*(.*))?$',
    re.IGNORECASE | re.DOTALL,
)
_FB_CORRECT_RE = re.compile(r"(?:Step \(1\) to step \((\d+)\) are correct\.|Step \(1\) is correct\.)?\s*The final response is also correct\.?\s*$", re.IGNORECASE | re.DOTALL)


def parse_feedback(text: str, n_steps: int) -> Feedback | None:
    """Parse a feedback sentence (with or without the `Feedback:` prefix) about
    a rationale of `n_steps` numbered steps. None when it is not in the form."""
    body = text.strip()
    if body.startswith(FEEDBACK_PREFIX):
        body = body[len(FEEDBACK_PREFIX):].strip()
    body = body.split("\n" + UPDATED_PREFIX)[0].strip()
    m = _FB_CORRECT_RE.fullmatch(body)
    if m:
        return Feedback(n_steps=n_steps, error_step=None)
    m = _FB_ERROR_RE.search(body)
    if not m:
        return None
    step = n_steps + 1 if m.group(2) else int(m.group(1))
    reason = (m.group(4) or "").strip()
    return Feedback(n_steps=n_steps, error_step=step, segment=m.group(3), reason=reason)


# -------------------------------------------------------------- trajectory ---


@dataclass(frozen=True)
class Turn:
    """One rationale in a trajectory and the feedback written about it (if any)."""

    rationale: str
    feedback: str | None = None


@dataclass(frozen=True)
class Trajectory:
    turns: tuple[Turn, ...] = field(default_factory=tuple)

    def render(self) -> str:
        """attempt, Feedback, Updated Answer, Feedback, ... as one text."""
        out: list[str] = []
        for i, turn in enumerate(self.turns):
            out.append(turn.rationale.strip() if i == 0 else f"{UPDATED_PREFIX} {turn.rationale.strip()}")
            if turn.feedback is not None:
                out.append(f"{FEEDBACK_PREFIX} {turn.feedback.strip()}")
        return "\n".join(out)


_SPLIT_RE = re.compile(r"^\s*(Feedback:|Updated Answer:)", re.MULTILINE)


def parse_trajectory(text: str) -> Trajectory:
    """Split model output into turns. Text after the last marker that is neither
    a rationale nor feedback is kept in the last open part."""
    turns: list[Turn] = []
    pieces = _SPLIT_RE.split(text)
    current = pieces[0]
    rationale: str | None = current.strip()
    i = 1
    while i < len(pieces):
        marker, body = pieces[i], pieces[i + 1]
        i += 2
        if marker == FEEDBACK_PREFIX:
            turns.append(Turn(rationale=rationale or "", feedback=body.strip()))
            rationale = None
        else:
            if rationale is not None:
                turns.append(Turn(rationale=rationale))
            rationale = body.strip()
    if rationale is not None:
        turns.append(Turn(rationale=rationale))
    return Trajectory(turns=tuple(turns))
