"""The shared base of the generated families (arithmetic, word_sorting,
date_understanding, logical_deduction).

What every such family does the same way is written here once:

- `levels`: a table preset -> subset -> difficulty labels;
- `from_record`: the record's type and field checks, then the family's own
  reading (`_read_record`), then the id, split and subset by one rule
  (`tasks.external.record_id`, `record_split`, `record_subset`);
- `check_steps`: the crash guard around the family's checker
  (`_check_steps`): model text can be anything, and a checker that trips on
  it flags step 1 instead of ending a run;
- `corrupt`: the gold rationale with one step, or the final response, made
  wrong; the family only proposes wrong texts (`_wrong_steps`,
  `_wrong_finals`) and the base keeps the first that its checker flags at
  exactly that step;
- `wrong_attempt`: a whole wrong attempt, the mistake at one step carried
  through every later step to a wrong final answer (what the demo source
  hands the teacher); the family proposes the wrong runs from that step on
  (`_wrong_runs`) and the base keeps the first that its checker flags at
  exactly that step with a wrong final answer.

A family subclasses `GeneratedFamily`, sets `name`, `LEVELS` (and
`question_example`), and writes `generate`, `parse_answer`, `check_answer`,
`continue_rationale` and the five hooks above.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar, Iterable

from tripost.errors import TripostError
from tripost.format import Rationale, parse_rationale, render_rationale
from tripost.tasks.base import PRESETS, SUBSETS, Problem, StepCheck
from tripost.tasks.external import check_record, record_id, record_split, record_subset

# What a step that no reader of the family understands is told.
FORM_REASON = "this step does not follow the expected form"


@dataclass(frozen=True)
class StepError:
    """What is wrong with one step: the verbatim piece at fault and why."""

    segment: str
    reason: str


def clip(text: str, n: int = 60) -> str:
    """`text` cut to `n` characters with "..." (for one-line errors)."""
    return text if len(text) <= n else text[: n - 3] + "..."


def text_field(record: dict[str, Any], field: str, family: str, hint: str = "") -> str:
    """The record's `field` when it is a non-empty string, as given."""
    value = record.get(field)
    if not isinstance(value, str) or not value.strip():
        raise TripostError(f"{family} record: field {field!r} must be a non-empty string{hint}")
    return value


def first_wrong_step(
    parsed: Rationale, feed: Callable[[str], StepError | None], quote: Callable[[str], str]
) -> tuple[int, StepError] | None:
    """The first step (1-based) that is numbered out of turn or that `feed`
    rejects, with what is wrong; None when every step passes. `feed` judges
    one step and moves the family's checker on; `quote` picks the piece of a
    misnumbered step to show."""
    for k, (num, step) in enumerate(zip(parsed.numbers, parsed.steps), start=1):
        if num != k:
            return k, StepError(quote(step), f"this step is numbered ({num}) but should be ({k})")
        err = feed(step)
        if err is not None:
            return k, err
    return None


class GeneratedFamily:
    """Template of a generated family; see the module docstring."""

    name: ClassVar[str]
    scripted: ClassVar[bool] = True
    #: preset -> subset -> difficulty labels
    LEVELS: ClassVar[dict[str, dict[str, list[str]]]]
    #: appended to the error for a missing question, e.g. " such as '(1 + 2) ='"
    question_example: ClassVar[str] = ""

    # ---- levels

    def levels(self, preset: str, subset: str) -> list[str]:
        if preset not in PRESETS:
            raise TripostError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        if subset not in SUBSETS:
            raise TripostError(f"unknown subset {subset!r}; choose from {', '.join(SUBSETS)}")
        return list(self.LEVELS[preset][subset])

    # ---- external records

    def from_record(self, record: dict[str, Any]) -> Problem:
        """A problem from a record with at least `question` and `answer`. The
        id is the record's `id` when it has one, else the id a generated
        problem with this question gets; the split is the record's `split`
        when it names one, else the question's (`split_of`); the subset is
        the record's `subset` when it names one, else seen."""
        if not isinstance(record, dict):
            raise TripostError(f"{self.name} record must be a JSON object with 'question' and 'answer'")
        check_record(record)  # loosely read fields' types, and sizes
        question = text_field(record, "question", self.name, self.question_example).strip()
        p = self._read_record(record, question)
        return replace(
            p,
            id=record_id(record, self.name, question),
            family=self.name,
            question=question,
            split=record_split(record, question),
            subset=record_subset(record),
        )

    def _read_record(self, record: dict[str, Any], question: str) -> Problem:
        """The family's reading of a checked record (`question` stripped):
        answer, rationale, difficulty, options and meta. Id, split and
        subset are set by `from_record`."""
        raise NotImplementedError

    # ---- steps

    def check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        """The family's `_check_steps`, which never raises on model text:
        anything the checker trips on is flagged at step 1 as not in the
        expected form (the tests call `_check_steps` to see such crashes)."""
        try:
            return self._check_steps(problem, rationale)
        except Exception:  # noqa: BLE001 - model output must never crash a run; report, don't raise
            return StepCheck(False, 1, "", FORM_REASON, 0, None)

    def _check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        raise NotImplementedError

    # ---- corruption (tests, demos and the few-shot prompts)

    def _parsed_for(self, problem: Problem, step: int) -> Rationale:
        """The gold rationale parsed, with `step` checked to be in 1..n+1."""
        parsed = parse_rationale(problem.rationale)
        if not 1 <= step <= parsed.n_steps + 1:
            raise TripostError(f"{self.name}: step {step} is out of range 1..{parsed.n_steps + 1}")
        return parsed

    def corrupt(self, problem: Problem, step: int, rng: random.Random) -> str:
        """The gold rationale with step `step` made wrong (n + 1 = the final
        response): the first of the family's wrong texts that `check_steps`
        flags at exactly that step, else the last one tried."""
        text, parsed = problem.rationale, self._parsed_for(problem, step)
        candidates: Iterable[str]
        if step == parsed.n_steps + 1:
            candidates = (_before(text, parsed.final_offset) + line for line in self._wrong_finals(problem, parsed, rng))
        else:
            start, end = parsed.offsets[step - 1], parsed.offset_of(step + 1)
            body = text[start:end]
            tail = body[len(body.rstrip("\r\n")) :] or "\n"
            candidates = (
                text[:start] + f"({step}) {new}" + tail + text[end:] for new in self._wrong_steps(problem, parsed, step, rng)
            )
        out: str | None = None
        # Lazily: a family may draw its next wrong text only when the last one was not flagged.
        for out in candidates:
            if self.check_steps(problem, out).first_error_step == step:
                return out
        if out is None:
            raise AssertionError(f"{self.name}: no wrong text for step {step}")
        return out

    # ---- wrong attempts (the demo source, tripost.sources.demo)

    def wrong_attempt(self, problem: Problem, step: int, rng: random.Random) -> str:
        """A wrong attempt whose first mistake is at step `step` (n + 1 = the
        final response): the gold rationale verbatim before that step, the
        step made wrong, and every later step worked on from the wrong result
        (a student's slip carries through), so that the final answer is wrong
        too. The first of the family's runs (`_wrong_runs`; for n + 1 its
        wrong final lines) that `check_steps` flags at exactly `step` with a
        wrong final answer; when no run is (a slip whose effect cancels out,
        or a problem the family cannot replay), the last resort is
        `corrupt`'s text, whose final answer may still be right."""
        text, parsed = problem.rationale, self._parsed_for(problem, step)
        candidates: Iterable[str]
        if step == parsed.n_steps + 1:
            candidates = (_before(text, parsed.final_offset) + line for line in self._wrong_finals(problem, parsed, rng))
        else:
            prefix = _before(text, parsed.offsets[step - 1])
            candidates = (
                prefix + render_rationale(steps, answer, start=step) for steps, answer in self._wrong_runs(problem, parsed, step, rng)
            )
        # Lazily: a family draws its next run only when the last one did not do.
        for out in candidates:
            check = self.check_steps(problem, out)
            if check.first_error_step == step and not check.correct:
                return out
        return self.corrupt(problem, step, rng)

    def _wrong_runs(self, problem: Problem, parsed: Rationale, step: int, rng: random.Random) -> Iterable[tuple[list[str], str]]:
        """Wrong runs from step `step` (1..n) to the end, most natural first:
        (steps from `step` on, the first of them wrong and the rest worked
        on from it, the final answer they reach). Steps before `step` are the
        gold ones (`parsed`), kept verbatim by `wrong_attempt`."""
        raise NotImplementedError

    def _wrong_finals(self, problem: Problem, parsed: Rationale, rng: random.Random) -> Iterable[str]:
        """Wrong final response lines, most natural first; the last is the
        last resort (it is returned even if not flagged)."""
        raise NotImplementedError

    def _wrong_steps(self, problem: Problem, parsed: Rationale, step: int, rng: random.Random) -> Iterable[str]:
        """Wrong texts for step `step` (without its number), most natural
        first; the last is the last resort."""
        raise NotImplementedError


def _before(text: str, offset: int | None) -> str:
    """`text` up to `offset` (None: all of it), ending in a newline unless empty."""
    prefix = text[:offset] if offset is not None else text
    return prefix + "\n" if prefix and not prefix.endswith("\n") else prefix


__all__ = ["FORM_REASON", "GeneratedFamily", "StepError", "clip", "first_wrong_step", "text_field"]
