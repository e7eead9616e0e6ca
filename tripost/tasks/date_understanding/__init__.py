"""Date understanding, after BIG-bench's `date_understanding` task.

    Today is Christmas Eve of 1937. What is the date 10 days ago in MM/DD/YYYY?
    Options:
    (A) 12/14/2026
    (B) 12/14/1937
    ...

A problem is a chain of dates. Node 0 is the anchor the question gives (a
date written MM/DD/YYYY, a month-name date like "Apr 10, 1985", a holiday
like "Christmas Eve of 1937" or a period like "the last day of February in
2004"); every later node is the previous one moved by an offset (days, weeks,
months or years, earlier or later): yesterday -> today, the day Jane moved ->
the day she bought a car -> today, and finally today -> the date asked for.
Difficulty = number of reasoning steps of the gold rationale: one step names
the anchor in MM/DD/YYYY when the question does not already, one step per
offset. TriPosT's split (Yu et al. 2024, Sec. 4.1): seen 1-2 steps, unseen
3+; the `small` preset keeps 1 step seen and 2 steps unseen.

    (1) Today is Christmas Eve of 1937, so today is 12/24/1937.
    (2) 10 days ago from 12/24/1937 is 12/14/1937.
    (Final response) So the answer is 12/14/1937.

Month arithmetic (the rule the checker uses, documented here because months
differ in length): moving by N months keeps the day of the month and clamps it
to the last day of the target month (01/31 + 1 month = 02/28, or 02/29 in a
leap year); a year is 12 months (02/29/2004 + 1 year = 02/28/2005). Generated
problems never hit the clamp, so no gold answer depends on the convention.

The step checker reads every date claim in a step (MM/DD/YYYY, also M/D/YYYY
and month-name dates) and every offset phrase ("10 days ago from", "1 day
after", "the day before", "minus 3 weeks", "24 hours later"), binds each offset
to the date it starts from and the date it claims, and judges the claims
against the chain: a date starting a step must already be known (given by the
question or found by an earlier step), a computed date must equal its source
moved by the stated offset, and the date a step ends on must be a date of the
chain. Steps may combine offsets ("2 days after yesterday is tomorrow") or say
things in other words; what they claim must be true and follow.

Modules: `dates` (dates and moves), `claims` (what a step writes),
`check` (the step checker and the chain), `answers` (reading an answer),
`generate` (problems and gold steps), `corrupt` (mistakes for `corrupt`);
the family itself is here.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

from tripost.errors import TripostError
from tripost.format import Rationale, final_line, parse_final_answer, parse_rationale
from tripost.tasks.base import Problem, StepCheck
from tripost.tasks.date_understanding.answers import normalise, options_of, resolve
from tripost.tasks.date_understanding.check import Chain, Checker
from tripost.tasks.date_understanding.claims import head
from tripost.tasks.date_understanding.corrupt import wrong_answers, wrong_runs, wrong_steps
from tripost.tasks.date_understanding.dates import Offset, add_months, fmt, parse_date
from tripost.tasks.date_understanding.generate import FAMILY, generate_problem
from tripost.tasks.external import record_difficulty
from tripost.tasks.family import GeneratedFamily, first_wrong_step, text_field

# TriPosT's split (Yu et al. 2024, Sec. 4.1): seen 1-2 steps, unseen 3+; the
# small preset keeps 1 step seen and 2 steps unseen.
LEVELS = {
    "paper": {"seen": ["1", "2"], "unseen": ["3", "4"]},
    "small": {"seen": ["1"], "unseen": ["2"]},
}


class DateUnderstandingTask(GeneratedFamily):
    """The date some days, weeks, months or years from a date the question gives (BIG-bench's date_understanding)."""

    name = FAMILY
    LEVELS = LEVELS

    def generate(self, rng: random.Random, level: str) -> Problem:
        return generate_problem(rng, level)

    # -- external records -------------------------------------------------------

    def _read_record(self, record: dict[str, Any], question: str) -> Problem:
        raw_options = record.get("options")
        if raw_options is None:
            options = options_of(question)
        elif isinstance(raw_options, list) and all(isinstance(o, str) for o in raw_options) and len(raw_options) <= 6:
            options = tuple(normalise(re.sub(r"^\s*\([A-Fa-f]\)\s*", "", o)) or o.strip() for o in raw_options)
        else:
            raise TripostError("field 'options' must be a list of at most 6 strings")
        answer = text_field(record, "answer", self.name, " (a MM/DD/YYYY date or an option letter)")
        norm = normalise(answer)
        if norm is None:
            raise TripostError(f"answer {answer!r} is neither a MM/DD/YYYY date nor an option letter like (A)")
        resolved = resolve(norm, options)
        if resolved is None:
            raise TripostError(f"answer {answer!r} names no option of the question (options: {len(options)})")
        if parse_date(resolved) is None:
            raise TripostError(f"answer {answer!r} is not a calendar date")
        return Problem(
            id="",
            family=FAMILY,
            question=question,
            answer=resolved,
            rationale=record.get("rationale") or "",  # check_record has made sure it is a string
            difficulty=record_difficulty(record, "external"),
            options=options,
        )

    # -- answers ----------------------------------------------------------------

    def parse_answer(self, text: str) -> str | None:
        if not isinstance(text, str):
            return None
        parsed = parse_rationale(text)
        if parsed.final is not None:
            return normalise(parse_final_answer(parsed.final))
        if parsed.steps:
            return None  # a rationale that stops before its final response has no answer
        return normalise(parse_final_answer(text) or text)

    def check_answer(self, problem: Problem, answer: str | None) -> bool:
        got = resolve(answer, problem.options)
        gold = resolve(problem.answer, problem.options)
        return got is not None and got == gold

    # -- steps ------------------------------------------------------------------

    def _check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        text = rationale if isinstance(rationale, str) else ""
        parsed = parse_rationale(text)
        n = parsed.n_steps
        raw = parse_final_answer(parsed.final) if parsed.final is not None else None
        answer = resolve(raw, problem.options) or normalise(raw)
        correct = self.check_answer(problem, answer)

        def result(step: int | None, segment: str = "", reason: str = "") -> StepCheck:
            return StepCheck(correct, step, segment, reason, n, answer)

        gold = resolve(problem.answer, problem.options) or problem.answer
        chain = Chain.from_meta(problem.meta)
        checker: Checker | None = None
        if chain is not None:
            if n == 0:
                return result(1, head(parsed.final or ""), "the rationale has no numbered steps")
            checker = Checker(chain)
            wrong = first_wrong_step(parsed, checker.step, head)
            if wrong is not None:
                return result(wrong[0], wrong[1].segment, wrong[1].reason)
        if parsed.final is None:
            return result(n + 1, "", "the final response is missing")
        if answer is None:
            return result(n + 1, head(parsed.final), 'the final response should say "So the answer is MM/DD/YYYY."')
        if not correct:
            seg = raw if raw and raw in parsed.final else head(parsed.final)
            if chain is not None and checker is not None and checker.state == len(chain.hops):
                return result(n + 1, seg, f"the steps found {gold}")
            return result(n + 1, seg, f"the date the question asks for is {gold}")
        return result(None)

    def continue_rationale(self, problem: Problem, kept_steps: list[str]) -> tuple[list[str], str]:
        chain = Chain.from_meta(problem.meta)
        if chain is None or not chain.steps:
            raise TripostError(
                f"the scripted teacher can only improve generated date_understanding problems (problem {problem.id} has no chain)"
            )
        checker = Checker(chain)
        for step in kept_steps:
            # Kept steps are the correct prefix of an attempt; should one be
            # wrong anyway, carry on from the state the right ones reached.
            if checker.step(step) is not None:
                break
        out = [t for t, node in chain.steps if node > checker.state or (node == 0 and checker.steps_done == 0)]
        return out, fmt(chain.nodes[-1])

    # -- corruption -----------------------------------------------------------

    def _wrong_finals(self, problem: Problem, parsed: Rationale, rng: random.Random) -> list[str]:
        return [final_line(ans) for ans in wrong_answers(problem, rng)] + [final_line("unknown")]

    def _wrong_steps(self, problem: Problem, parsed: Rationale, step: int, rng: random.Random) -> list[str]:
        return wrong_steps(parsed.steps[step - 1], rng) + ["I am not sure what comes next."]

    def _wrong_runs(self, problem: Problem, parsed: Rationale, step: int, rng: random.Random) -> Iterator[tuple[list[str], str]]:
        # A slip in `step` whose wrong date the later moves carry on to the
        # answer (corrupt.wrong_runs); only over a generated chain's own steps.
        chain = Chain.from_meta(problem.meta)
        if chain is None or [t for t, _ in chain.steps] != list(parsed.steps):
            return iter(())
        return wrong_runs(chain, step, rng)


__all__ = ["DateUnderstandingTask", "Offset", "add_months", "fmt", "normalise", "options_of", "parse_date"]
