"""Test-time self-improvement: the student answers, then critiques and updates
its own answer, with no help and no oracle.

Each problem goes through pieces generated greedily after its prompt:

    attempt                      (generation stops at `Feedback:`)
    \\nFeedback: ...              (stops at `Updated Answer:`)
    \\nUpdated Answer: ...        (stops at `Feedback:`)
    \\nFeedback: ...  ...

What the student sees when it writes a piece (`turns`): with "single" (the
default, as TriPosT's authors test: jasonyux/TriPosT
models/self_improve/base.py:303-330 `_format_next_step`), only the question,
its last answer and, for an update, that answer's feedback, the shape of the
single-turn examples it was trained on (tripost.buffer, `turns`); with
"whole", the whole transcript so far. The transcript recorded is the same
either way.

We write each marker ourselves and let the student continue after it, so the
student writes every word of its feedback and updates, yet a student that
ends its text early is still asked for feedback (`force_feedback`, on by
default: a TriPosT-trained student always writes feedback after an answer,
"The final response is also correct." when it is satisfied). After every
piece the pure parser `decide_stop` (stop.py) decides from the text alone
whether this problem is finished.

All problems advance together: each round is one batched greedy call over
every unfinished problem, and every unfinished problem is at the same phase
(attempt, then feedback and update alternating), so nothing waits on a slow
neighbour beyond one round.

`GenerateFn` is the one thing this needs from a model: continue each prefix
greedily and stop at any of the stop strings. `student_generate_fn` makes one
from a loaded `Student` (or any `GenerationBackend`); a test can pass a plain
function.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from tqdm import tqdm

from tripost.errors import TripostError
from tripost.evaluate.stop import ENDED, StopDecision, decide_stop
from tripost.format import FEEDBACK_PREFIX, Turn, UPDATED_PREFIX, parse_trajectory
from tripost.student.base import LoadedModel, SamplingParams
from tripost.student.generate import GenerationBackend, LocalBackend
from tripost.student.load import Student
from tripost.student.prompt import build_prompt
from tripost.tasks.base import Problem

STOP_STRINGS = (FEEDBACK_PREFIX, UPDATED_PREFIX)
TURN_MODES = ("single", "whole")
ATTEMPT, FEEDBACK, UPDATE = "attempt", "feedback", "update"
_MARKER = {ATTEMPT: "", FEEDBACK: "\n" + FEEDBACK_PREFIX, UPDATE: "\n" + UPDATED_PREFIX}


class GenerateFn(Protocol):
    """Greedy continuation of each prefix, in order. An item is the continued
    text (a `str`) or an object with `.text` and optionally `.finish_reason`
    ("stop" / "eos" / "length") and `.n_tokens`, like `student.Generation`.
    The text may or may not include the stop string that ended it: the runner
    cuts at the first stop string either way."""

    def __call__(self, prefixes: Sequence[str], stop: Sequence[str]) -> Sequence[Any]: ...


PromptFn = Callable[[Problem], str]


@dataclass(frozen=True)
class Piece:
    """One generated piece of a transcript."""

    kind: str  # attempt | feedback | update
    text: str  # as written by the student, cut at the stop string, right-stripped
    finish_reason: str | None = None  # stop | eos | length, when the generator says
    n_tokens: int | None = None


@dataclass(frozen=True)
class Transcript:
    """What the student wrote for one problem, and why it stopped. Holds no
    judgement of correctness: that is metrics.py's job, with the gold answer."""

    problem_id: str
    prompt: str
    text: str  # everything after the prompt: attempt, Feedback: ..., Updated Answer: ...
    stop_reason: str
    stop_detail: str = ""
    pieces: tuple[Piece, ...] = field(default_factory=tuple)

    @property
    def turns(self) -> tuple[Turn, ...]:
        return parse_trajectory(self.text).turns or (Turn(rationale=""),)

    @property
    def rationales(self) -> list[str]:
        return [t.rationale for t in self.turns]

    @property
    def first_rationale(self) -> str:
        return self.rationales[0]

    @property
    def final_rationale(self) -> str:
        """The last rationale the student wrote: its final answer, whatever
        made it stop (TriPosT scores the last `Updated Answer`)."""
        return self.rationales[-1]

    @property
    def n_updates(self) -> int:
        return len(self.turns) - 1

    @property
    def revised(self) -> bool:
        return self.n_updates > 0

    @property
    def n_tokens(self) -> int | None:
        counts = [p.n_tokens for p in self.pieces]
        return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pieces"] = [asdict(p) for p in self.pieces]
        return d


CALL_BATCHES = 4


def plain_prompt(problem: Problem) -> str:
    """The student's instruction without a chat template (prompt.py's plain form)."""

    return build_prompt(None, problem.question)


def student_prompt_fn(tokenizer: Any, fmt: Any = None) -> PromptFn:
    """Prompts exactly as sampling and training build them (student/prompt.py),
    so the student is evaluated on the text it was trained on."""

    return lambda problem: build_prompt(tokenizer, problem.question, fmt)


def student_generate_fn(model: LoadedModel | GenerationBackend, *, max_new_tokens: int = 256, batch_size: int = 16, progress: bool = False) -> GenerateFn:
    """A `GenerateFn` over a loaded `Student` (local batched greedy decoding
    with stop strings) or any `GenerationBackend` (e.g. a remote server)."""

    if isinstance(model, Student):
        backend: Any = LocalBackend(model, batch_size=batch_size, progress=progress)
    elif isinstance(model, GenerationBackend):
        backend = model
    else:
        raise TripostError(f"cannot generate with a {type(model).__name__}: expected a Student or a GenerationBackend")

    def generate(prefixes: Sequence[str], stop: Sequence[str]) -> list[Any]:
        params = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop=tuple(stop))
        return [row[0] for row in backend.generate(list(prefixes), params)]

    return generate


def _cut(text: str) -> str:
    cut = min((p for p in (text.find(s) for s in STOP_STRINGS) if p >= 0), default=-1)
    return text if cut < 0 else text[:cut]


def _piece(kind: str, out: Any) -> Piece:
    if isinstance(out, str):
        text, reason, n = out, None, None
    elif hasattr(out, "text"):
        text, reason, n = out.text, getattr(out, "finish_reason", None), getattr(out, "n_tokens", None)
    else:
        raise TripostError(f"generate_fn returned a {type(out).__name__}; expected a str or an object with .text")
    cut = _cut(text)
    if cut != text and reason is None:
        reason = "stop"
    return Piece(kind=kind, text=cut.rstrip(), finish_reason=reason, n_tokens=n)


def run_self_improvement_batch(
    problems: Sequence[Problem],
    generate_fn: GenerateFn,
    max_turns: int = 3,
    *,
    prompt_fn: PromptFn | None = None,
    force_feedback: bool = True,
    batch_size: int = 16,
    progress: bool = False,
    turns: str = "single",
) -> list[Transcript]:
    """Self-improve on every problem at once; one `Transcript` per problem, in
    order. `turns`: what each piece is written after (module docstring)."""
    if turns not in TURN_MODES:
        raise TripostError(f"turns must be one of {', '.join(TURN_MODES)}, not {str(turns)[:40]!r}")
    if max_turns < 0:
        raise TripostError(f"max_turns must be >= 0, got {max_turns}")
    if batch_size < 1:
        raise TripostError(f"batch_size must be at least 1, got {batch_size}")
    prompt_fn = prompt_fn or plain_prompt
    prompts = [prompt_fn(p) for p in problems]
    texts = [""] * len(problems)
    # The last answer and the last feedback of each problem (turns="single").
    last_answer = [""] * len(problems)
    last_feedback = [""] * len(problems)
    pieces: list[list[Piece]] = [[] for _ in problems]
    decisions: list[StopDecision | None] = [None] * len(problems)
    # Most pieces a problem can need: the attempt, then K x (feedback, update).
    per_problem = 1 + 2 * max_turns
    bar = tqdm(total=len(problems) * per_problem, desc="self-improve", unit="piece", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    active = list(range(len(problems)))
    phase = ATTEMPT
    try:
        while active:
            marker = _MARKER[phase]
            if turns == "whole":
                prefixes = {i: prompts[i] + texts[i] + marker for i in active}
            elif phase == UPDATE:
                prefixes = {i: prompts[i] + last_answer[i] + _MARKER[FEEDBACK] + last_feedback[i] + marker for i in active}
            else:
                prefixes = {i: prompts[i] + last_answer[i] + marker for i in active}
            # Similar lengths in one batch: less padding. Each call gets
            # CALL_BATCHES batches' worth of prefixes: the continuous engine
            # keeps its `batch_size` slots full from that queue, and the
            # progress bar still moves.
            order = sorted(active, key=lambda i: (len(prefixes[i]), i))
            per_call = batch_size * CALL_BATCHES
            for k in range(0, len(order), per_call):
                chunk = order[k : k + per_call]
                outs = list(generate_fn([prefixes[i] for i in chunk], STOP_STRINGS))
                if len(outs) != len(chunk):
                    raise TripostError(f"generate_fn returned {len(outs)} continuations for {len(chunk)} prefixes")
                for i, out in zip(chunk, outs):
                    piece = _piece(phase, out)
                    pieces[i].append(piece)
                    texts[i] = texts[i] + marker + piece.text
                    if phase == FEEDBACK:
                        last_feedback[i] = piece.text
                    else:
                        # Re-prompted as the answer right after the question, as
                        # a first attempt is written (the authors strip it too).
                        last_answer[i] = piece.text.strip()
                    decision = decide_stop(texts[i], max_turns)
                    if (
                        not decision.stop
                        and not force_feedback
                        and phase != FEEDBACK
                        and piece.finish_reason in ("eos", "length")
                    ):
                        decision = StopDecision(True, ENDED, f"the {phase} ended without feedback ({piece.finish_reason})")
                    if decision.stop:
                        decisions[i] = decision
                        bar.update(per_problem - len(pieces[i]) + 1)
                    else:
                        bar.update(1)
            active = [i for i in active if decisions[i] is None]
            phase = FEEDBACK if phase != FEEDBACK else UPDATE
    finally:
        bar.close()
    out: list[Transcript] = []
    for i, p in enumerate(problems):
        d = decisions[i]
        assert d is not None and d.reason is not None  # the turn limit ends every problem
        out.append(Transcript(problem_id=p.id, prompt=prompts[i], text=texts[i], stop_reason=d.reason, stop_detail=d.detail, pieces=tuple(pieces[i])))
    return out


def run_self_improvement(
    problem: Problem,
    generate_fn: GenerateFn,
    max_turns: int = 3,
    *,
    prompt_fn: PromptFn | None = None,
    force_feedback: bool = True,
    turns: str = "single",
) -> Transcript:
    """Self-improvement on one problem (a batch of one)."""
    return run_self_improvement_batch([problem], generate_fn, max_turns, prompt_fn=prompt_fn, force_feedback=force_feedback, turns=turns)[0]
