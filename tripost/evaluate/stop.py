"""When test-time self-improvement stops: a pure parser over a transcript.

At test time the student writes its attempt, then its own `Feedback:`, then an
`Updated Answer:`, and so on (TriPosT, Yu et al. 2024, Section 2.3: the model
"self-improves" until its feedback says the answer is correct). Nothing here
sees the gold answer: stopping is decided from the student's own text alone,
so the evaluation measures what the student would do on its own (no oracle
stop; the gold answer is only used for scoring, in metrics.py).

`decide_stop(text, max_turns)` reads a transcript (the attempt and every
feedback / update after it, as one text in tripost.format's layout) and walks
it turn by turn; the first rule that fires is the answer:

- "correct": the student's feedback says the final response is also correct;
- "no progress": an update is empty or equals the rationale it updates, or a
  feedback is not in TriPosT's form / names no step of the rationale (the
  student cannot act on it);
- "repetition": an update repeats an earlier (not the previous) rationale, so
  the student is cycling, or a piece of text loops (a line over and over, or
  a block repeated at the end: a degenerate greedy loop);
- "turn limit": `max_turns` updates have been written.

Otherwise the transcript is not finished: after an attempt or an update the
student owes feedback; after feedback that names an error it owes an update.
"""

from __future__ import annotations

from typing import NamedTuple

from tripost.errors import TripostError
from tripost.format import parse_feedback, parse_rationale, parse_trajectory

CORRECT = "correct"
NO_PROGRESS = "no progress"
REPETITION = "repetition"
TURN_LIMIT = "turn limit"
# Only when evaluation does not force feedback: the student ended its answer
# (end-of-sequence) without writing `Feedback:` itself. Decided by the runner,
# which sees the finish reason; a transcript's text cannot show it.
ENDED = "ended"
STOP_REASONS = (CORRECT, NO_PROGRESS, REPETITION, TURN_LIMIT, ENDED)

# Loop detection. A line of at least MIN_LOOP_LINE characters written
# LINE_REPEATS times in one piece, or a block repeated TAIL_REPEATS times back
# to back at the end of a piece covering at least MIN_LOOP_SPAN characters.
# Real rationales number their steps, so their lines differ; a greedy loop of
# a small model repeats whole lines or a short block until the token limit.
MIN_LOOP_LINE = 8
LINE_REPEATS = 3
TAIL_REPEATS = 3
MIN_LOOP_SPAN = 24
MAX_LOOP_PERIOD = 200


class StopDecision(NamedTuple):
    """`stop`, `reason` (one of STOP_REASONS or None), and a short `detail`
    saying where; unpacks as `stop, reason, detail`."""

    stop: bool
    reason: str | None = None
    detail: str = ""


CONTINUE = StopDecision(False)


def normalise(text: str) -> str:
    """Whitespace does not make two rationales different."""
    return " ".join(text.split())


def loops(text: str) -> bool:
    """True when `text` shows a generation loop (see the module docstring)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        key = normalise(line)
        if len(key) >= MIN_LOOP_LINE:
            counts[key] = counts.get(key, 0) + 1
            if counts[key] >= LINE_REPEATS:
                return True
    tail = text.rstrip()
    for period in range(1, min(MAX_LOOP_PERIOD, len(tail) // TAIL_REPEATS) + 1):
        # Short blocks must repeat until they cover MIN_LOOP_SPAN characters.
        repeats = max(TAIL_REPEATS, -(-MIN_LOOP_SPAN // period))
        if period * repeats > len(tail):
            continue
        block = tail[-period:]
        if block.strip() and tail.endswith(block * repeats):
            return True
    return False


def decide_stop(text: str, max_turns: int = 3) -> StopDecision:
    """Whether self-improvement stops after `text` (the student's transcript
    after its prompt) and why. Pure: the same text always gives the same answer."""
    if max_turns < 0:
        raise TripostError(f"max_turns must be >= 0, got {max_turns}")
    turns = parse_trajectory(text).turns
    if not turns:
        return CONTINUE
    earlier: list[str] = []
    for i, turn in enumerate(turns):
        label = "the attempt" if i == 0 else f"update {i}"
        rationale = normalise(turn.rationale)
        if loops(turn.rationale):
            return StopDecision(True, REPETITION, f"{label} loops")
        if i > 0:
            if not rationale:
                return StopDecision(True, NO_PROGRESS, f"{label} is empty")
            if rationale == earlier[-1]:
                return StopDecision(True, NO_PROGRESS, f"{label} equals the rationale it updates")
            if rationale in earlier:
                j = earlier.index(rationale)
                return StopDecision(True, REPETITION, f"{label} repeats {'the attempt' if j == 0 else f'update {j}'}")
        earlier.append(rationale)
        if turn.feedback is None:
            if i >= max_turns:
                return StopDecision(True, TURN_LIMIT, f"{i} update(s) written, limit {max_turns}")
            return CONTINUE  # feedback on this rationale comes next
        if loops(turn.feedback):
            return StopDecision(True, REPETITION, f"the feedback on {label} loops")
        n_steps = parse_rationale(turn.rationale).n_steps
        fb = parse_feedback(turn.feedback, n_steps)
        if fb is None:
            return StopDecision(True, NO_PROGRESS, f"the feedback on {label} is not in the feedback form")
        if fb.is_correct:
            return StopDecision(True, CORRECT, f"the feedback on {label} says the final response is correct")
        if fb.error_step is None or not 1 <= fb.error_step <= n_steps + 1:
            return StopDecision(True, NO_PROGRESS, f"the feedback on {label} names step {fb.error_step}, which {label} does not have")
    return CONTINUE  # feedback named an error: an update comes next
