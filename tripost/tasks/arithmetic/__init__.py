"""Multistep arithmetic, in BIG-bench's form (`multistep_arithmetic`), as TriPosT used it.

A question is an expression of integers -9..9 with + - * and parentheses:

    ((-3 + 5 * 2) - (7 - -1)) =

Difficulty is the number of numbers per innermost group (the *length*) and the
*nesting shape*: '1' is one group `(a op b ...)`, '2' combines two innermost
groups `(G1 op G2)`, '2-2' combines two of those `((G1 op G2) op (G3 op G4))`,
and so on. A level's label reads `len3-2-2` (length 3, shape '2-2').

The gold rationale follows TriPosT's arithmetic rationale (Yu et al. 2024,
Table 1): name the innermost groups, compute each, then the final equation,
one operation per `=`, respecting precedence:

    (1) This equation can be written as "(A - B)", where A = (-3 + 5 * 2) and B = (7 - -1).
    (2) Let's calculate A = (-3 + 5 * 2) = (-3 + 10) = 7.
    (3) Let's calculate B = (7 - -1) = 8.
    (4) Then, the final equation is (A - B) = (7 - 8) = -1.
    (Final response) So the answer is -1.

A single group (shape '1') skips the naming step: `(1) Let's calculate (3 + -4) = -1.`

The step checker reads any text. It checks meaning, not the gold wording:
every expression of a `X = Y = Z` chain is parsed (never `eval()`ed) and each
link must keep the value; the naming step must name exactly the problem's
innermost groups; a calculation must start from its variable's definition;
variables may be computed in any order and under any names; the final
equation must be the problem's equation with computed values substituted.

Modules: `expr` (trees: parse, render, evaluate, reduce), `analysis` (one
problem understood), `generate` (levels, gold rationales, continuation),
`check` (the step checker); the family itself is here.
"""

from __future__ import annotations

import random
import re
from typing import Any, Iterable, Iterator

from tripost.errors import TripostError
from tripost.format import Rationale, final_line, parse_rationale, render_rationale
from tripost.tasks.arithmetic.analysis import MAX_NUMBERS, Analysis, analyse, expression_of_question
from tripost.tasks.arithmetic.check import NUM_TEXT_RE, SCAN, WHERE_RE, State, check_text, normalise_answer, read_answer
from tripost.tasks.arithmetic.expr import MAX_DIGITS, OPERATORS, Group, Node, Num, Var, parse_expression, render
from tripost.tasks.arithmetic.generate import LEVELS, NUMBER_RANGE, continue_steps, random_expression, wrong_runs
from tripost.tasks.base import Problem, StepCheck
from tripost.tasks.external import MAX_RATIONALE_CHARS, record_difficulty, record_options
from tripost.tasks.family import GeneratedFamily, clip

_DIGITS_RE = re.compile(r"[0-9]+")
_DELTAS = (-3, -2, -1, 1, 2, 3)  # how far corrupt() and wrong_attempt() move a number


class ArithmeticTask(GeneratedFamily):
    """Multistep arithmetic in BIG-bench's form, e.g. ((-3 + 5 * 2) - (7 - -1)) =."""

    name = "arithmetic"
    LEVELS = LEVELS
    question_example = " such as '((-3 + 5 * 2) - (7 - -1)) ='"

    # ---- problems

    def generate(self, rng: random.Random, level: str) -> Problem:
        root = random_expression(rng, level)
        return self._problem(render(root) + " =", render(root), difficulty=level)

    def _problem(self, question: str, expression: str, difficulty: str | None = None, options: tuple[str, ...] = ()) -> Problem:
        a = analyse(expression)
        rationale = render_rationale(continue_steps(a, State(a)), a.answer)
        if len(rationale) > MAX_RATIONALE_CHARS:
            raise TripostError(
                f"arithmetic: the step-by-step rationale of {clip(question, 80)!r} is {len(rationale):,} characters long, "
                f"more than the {MAX_RATIONALE_CHARS:,} accepted (its numbers are too long)"
            )
        # The checker reads numbers of up to MAX_DIGITS digits: a problem whose
        # own rationale it could not read would flag every correct attempt.
        longest = max((len(m) for m in _DIGITS_RE.findall(rationale)), default=0)
        if longest > MAX_DIGITS:
            raise TripostError(
                f"arithmetic: {clip(question, 80)!r} reaches a number of {longest} digits on the way; "
                f"the step checker reads at most {MAX_DIGITS}"
            )
        return Problem(
            id="",
            family=self.name,
            question=question,
            answer=a.answer,
            rationale=rationale,
            difficulty=difficulty or a.label,
            options=options,
            meta={
                "expression": render(a.root),
                "value": a.value,
                "length": a.length,
                "shape": a.shape,
                "pattern": render(a.pattern),
                "variables": {name: render(g) for name, g in a.defs},
            },
        )

    def _read_record(self, record: dict[str, Any], question: str) -> Problem:
        answer = record.get("answer")
        if isinstance(answer, bool) or not isinstance(answer, (str, int)) or (isinstance(answer, str) and not answer.strip()):
            raise TripostError("arithmetic record: field 'answer' must be an integer or a string holding one")
        gold = self.parse_answer(str(answer))
        if gold is None:
            raise TripostError(f"arithmetic record: field 'answer' must be an integer, got {clip(str(answer), 80)!r}")
        # The record's own `rationale` is not used: the gold rationale must be
        # the one this checker and the scripted teacher speak.
        difficulty = record_difficulty(record, "")
        p = self._problem(question, expression_of_question(question), difficulty=difficulty or None, options=record_options(record))
        if p.answer != gold:
            raise TripostError(
                f"the answer {clip(str(answer), 80)!r} does not match the question {clip(question, 80)!r}, which equals {p.answer}"
            )
        # Generated problems are readable by construction; an external one may
        # not be (a group longer than the checker looks back for, SCAN): the
        # checker would then flag every correct attempt, the gold one included.
        if not self.check_steps(p, p.rationale).all_correct:
            raise TripostError(
                f"arithmetic: {clip(question, 80)!r} is too long for the step checker to read its step-by-step rationale "
                f"(keep a group under {SCAN} characters)"
            )
        return p

    # ---- answers

    def parse_answer(self, text: str) -> str | None:
        if text is None:
            return None
        return read_answer(str(text))

    def check_answer(self, problem: Problem, answer: str | None) -> bool:
        if answer is None:
            return False
        got = self.parse_answer(answer)
        return got is not None and got == normalise_answer(str(problem.answer))

    # ---- steps

    def _analysis(self, problem: Problem) -> Analysis:
        expr = problem.meta.get("expression") if isinstance(problem.meta, dict) else None
        if isinstance(expr, str) and expr:
            return analyse(expr)
        return analyse(expression_of_question(problem.question))

    def check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        self._analysis(problem)  # a bad problem is the caller's error: raised here, not flagged by the guard
        return super().check_steps(problem, rationale)

    def _check_steps(self, problem: Problem, rationale: str) -> StepCheck:
        a = self._analysis(problem)
        text = rationale if isinstance(rationale, str) else str(rationale)
        if len(text) > MAX_RATIONALE_CHARS:
            # A link `X = Y` is checked against every operation X allows, so
            # the work grows with the square of a link's length (one of 24,000
            # characters took 2.5 s): text longer than any record may hold is
            # flagged, not read. Model text is far shorter.
            answer = self.parse_answer(text)
            reason = f"the rationale is {len(text):,} characters long, more than the {MAX_RATIONALE_CHARS:,} checked"
            return StepCheck(answer == a.answer, 1, "", reason, parse_rationale(text).n_steps, answer)
        return check_text(a, text)

    def continue_rationale(self, problem: Problem, kept_steps: list[str]) -> tuple[list[str], str]:
        a = self._analysis(problem)
        state = State(a)
        for step in kept_steps:
            if state.feed(step) is not None:
                break  # kept steps are the correct ones; stop at anything else
        return continue_steps(a, state), a.answer

    # ---- corruption

    def _wrong_finals(self, problem: Problem, parsed: Rationale, rng: random.Random) -> Iterable[str]:
        answer = parsed.answer or problem.answer
        return [final_line(str(int(answer) + rng.choice(_DELTAS)))]

    def _wrong_runs(self, problem: Problem, parsed: Rationale, step: int, rng: random.Random) -> Iterator[tuple[list[str], str]]:
        # The gold procedure with one number written wrong in step `step`,
        # worked on from there (generate.wrong_runs); the gold rationale of an
        # arithmetic problem is always that procedure's (from_record rewrites it).
        return wrong_runs(self._analysis(problem), step, rng, _DELTAS)

    def _wrong_steps(self, problem: Problem, parsed: Rationale, step: int, rng: random.Random) -> Iterator[str]:
        text = parsed.steps[step - 1]
        where = WHERE_RE.search(text)
        start = where.end() if where else text.find("=") + 1
        spans = [m for m in NUM_TEXT_RE.finditer(text) if m.start() >= start]
        if not spans:
            raise TripostError(f"arithmetic: step {step} of the gold rationale has no number to alter")
        # A random number first (varied mistakes); the chain's last number (or
        # the last definition's) is always caught, so it is the last resort.
        # Drawn one at a time: the caller's rng moves on only as far as needed.
        for attempt in range(6):
            m = rng.choice(spans) if attempt < 5 else spans[-1]
            yield text[: m.start()] + str(int(m.group()) + rng.choice(_DELTAS)) + text[m.end() :]


__all__ = [
    "MAX_NUMBERS",
    "NUMBER_RANGE",
    "OPERATORS",
    "ArithmeticTask",
    "Group",
    "Node",
    "Num",
    "Var",
    "parse_expression",
    "render",
]
